"""Layer 3: training. One plain-PyTorch :class:`Trainer` for every learned solver, the
recipes that configure it (``solvers/*.toml``), the metrics, and evaluation."""

from pdekit.train.evaluate import evaluate, plot_predictions
from pdekit.train.recipe import TrainRecipe, load_train_recipe, train_from_recipe
from pdekit.train.trainer import Trainer, TrainingSettings

__all__ = [
    "TrainRecipe",
    "Trainer",
    "TrainingSettings",
    "evaluate",
    "load_train_recipe",
    "plot_predictions",
    "train_from_recipe",
]
