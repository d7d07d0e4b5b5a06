"""The Task interface of the Trainer: custom losses and batches, best-checkpoint selection,
the EMA of the weights, and the recipe's ``[task]`` table."""

import json

import pytest
import torch

import pdekit
from pdekit.data import RecipeError
from pdekit.models import DeepONet
from pdekit.models.checkpoint import load_checkpoint
from pdekit.train import Trainer
from pdekit.train.batches import field_statistics
from pdekit.train.recipe import recipe_from_dict
from pdekit.train.task import TASKS, Task, build_task, register_task, task_spec
from tests.train.tiny import AntiderivativeData


class PairBatches:
    """A batch source other than FieldBatches: (u, s) tuples straight from the tensors."""

    def __init__(self, data):
        self.u, self.s = data.u[:, None], data.s[:, None]

    def __len__(self):
        return len(self.u)

    def batches(self, batch_size, order=None, rank=0, world=1):
        order = torch.arange(len(self)) if order is None else order
        for i in range(0, len(order), batch_size):
            index = order[i:i + batch_size][rank::world]
            yield self.u[index], self.s[index]


if "test-negative-mse" not in TASKS:
    @register_task("test-negative-mse")
    class NegativeMSE(Task):
        """Scores by the negative test MSE (bigger is better), trains on a scaled MSE."""

        maximize = True
        select = "test_score"

        def __init__(self, scale: float = 1.0):
            self.scale = scale

        def make_batches(self, dataset, *, inputs, outputs, settings):
            return PairBatches(dataset)

        def wrap_model(self, model, batches, dataset, settings):
            return model

        def loss(self, model, batch, settings):
            u, s = batch
            return self.scale * (model(u) - s).square().mean(dim=(1, 2))

        def evaluate(self, model, batches, *, device, settings):
            with torch.no_grad():
                errors = [(model(u.to(device)) - s.to(device)).square().mean()
                          for u, s in batches.batches(64)]
            return {"test_score": -float(torch.stack(errors).mean())}


def _model(seed=0):
    torch.manual_seed(seed)
    return DeepONet([16, 32, 32], [1, 32, 32])


def test_a_custom_task_trains_and_keeps_the_checkpoint_with_the_largest_score(tmp_path):
    task = build_task({"name": "test-negative-mse", "scale": 2.0})
    assert task_spec(task) == {"name": "test-negative-mse", "scale": 2.0}
    trainer = Trainer(_model(), AntiderivativeData(64, 0), AntiderivativeData(32, 1), out=tmp_path,
                      task=task, epochs=12, batch_size=16, lr=3e-3, normalization="none", progress=False)
    before = trainer.evaluate()["test_score"]
    history = trainer.fit()
    scores = [r["test_score"] for r in history]
    assert max(scores) > before / 5  # scores are negative: a 5x smaller MSE
    assert trainer.best == max(scores)
    data = load_checkpoint(tmp_path / "best.pt")
    assert data["metadata"]["metrics"]["test_score"] == max(scores)
    assert data["metadata"]["task"] == {"name": "test-negative-mse", "scale": 2.0}


def test_field_normalisation_is_refused_for_batches_it_cannot_read():
    batches = PairBatches(AntiderivativeData(8, 0))
    assert field_statistics(batches, "none", None) is None
    with pytest.raises(ValueError, match="normalization 'field' needs field-to-field batches"):
        field_statistics(batches, "field", None)


def _ema_trainer(out, epochs, resume=False):
    return Trainer(_model(), AntiderivativeData(64, 0), AntiderivativeData(32, 1), out=out, resume=resume,
                   epochs=epochs, batch_size=16, lr=3e-3, normalization="none", ema_decay=0.9,
                   progress=False)


def test_ema_weights_are_the_running_average_and_what_is_saved(tmp_path):
    trainer = _ema_trainer(tmp_path, epochs=1)
    expected = [p.detach().clone() for p in trainer.model.parameters()]
    # replay the epoch by hand: the average after each optimiser step
    original_step = trainer.optimizer.step

    def step(*args, **kwargs):
        out = original_step(*args, **kwargs)
        for e, p in zip(expected, trainer.model.parameters(), strict=True):
            e.mul_(0.9).add_(0.1 * p.detach())
        return out

    trainer.optimizer.step = step
    trainer.fit()
    for e, shadow in zip(expected, trainer.ema, strict=True):
        torch.testing.assert_close(shadow, e, rtol=1e-6, atol=1e-7)
    raw = [p.detach().clone() for p in trainer.model.parameters()]
    assert any(not torch.equal(r, e) for r, e in zip(raw, expected, strict=True))
    saved = pdekit.load(tmp_path / "last.pt")
    for e, p in zip(expected, saved.parameters(), strict=True):
        torch.testing.assert_close(p, e, rtol=1e-6, atol=1e-7)
    for r, p in zip(raw, trainer.model.parameters(), strict=True):  # restored after saving
        assert torch.equal(r, p)


def test_resume_with_ema_gives_the_same_weights_and_average(tmp_path):
    straight = _ema_trainer(tmp_path / "a", epochs=4)
    straight.fit()
    _ema_trainer(tmp_path / "b", epochs=2).fit()
    second = _ema_trainer(tmp_path / "b", epochs=4, resume=True)
    second.fit()
    for a, b in zip(straight.model.parameters(), second.model.parameters(), strict=True):
        assert torch.equal(a, b)
    for a, b in zip(straight.ema, second.ema, strict=True):
        assert torch.equal(a, b)


RECIPE = {"name": "t", "dataset": "data/none", "model": {"name": "deeponet", "branch": [16, 8],
                                                          "trunk": [1, 8]}}


def test_recipe_task_table_is_validated_and_saved():
    recipe = recipe_from_dict({**RECIPE, "task": {"name": "test-negative-mse", "scale": 3.0}})
    assert recipe.task == {"name": "test-negative-mse", "scale": 3.0}
    assert json.loads(json.dumps(recipe.to_dict()))["task"]["scale"] == 3.0
    assert recipe_from_dict(RECIPE).task == {"name": "supervised"}
    with pytest.raises(RecipeError, match="unknown task 'nope'"):
        recipe_from_dict({**RECIPE, "task": {"name": "nope"}})
    with pytest.raises(RecipeError, match="takes no argument 'depth'"):
        recipe_from_dict({**RECIPE, "task": {"name": "test-negative-mse", "depth": 2}})
