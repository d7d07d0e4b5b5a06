"""Training recipes: one TOML file per training run (``solvers/*.toml``).

::

    name = "deeponet-darcy"
    dataset = "datasets/darcy.toml"     # a dataset recipe (generated into data_dir when
    data_dir = "data/darcy"             # missing) or a dataset folder
    inputs = ["a"]                      # optional: default the dataset's input fields
    outputs = ["u"]

    [model]                             # a registered model: its name and constructor arguments
    name = "deeponet"
    branch = [128, 128]
    trunk = [2, 128, 128]

    [training]                          # pdekit.train.TrainingSettings
    epochs = 200
    lr = 1e-3

    [task]                              # optional: a registered task (pdekit.train.task) and its
    name = "supervised"                 # arguments; default supervised field-to-field training

Unknown keys (at the top, in ``[training]``, or model arguments the model does not take) are
errors naming the key and the valid ones. ``KEY=VALUE`` settings (``pdekit train --set``)
change single keys before validation: ``model.width=32``, ``training.lr=5e-4``, ``name=...``;
the value is read as TOML (a number, ``true``, a list, a quoted string), else taken as text.
Relative paths are taken from the working directory, else from the folder above the recipe's
(the repository root for ``solvers/``).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from pdekit.data import PROBLEMS, RecipeError, generate, load_recipe, open_dataset
from pdekit.data.recipe import read_toml, toml_value, validate_dataclass
from pdekit.models.registry import MODELS, build_model
from pdekit.train.task import build_task
from pdekit.train.trainer import EPOCH_SCHEDULES, Trainer, TrainingSettings

__all__ = ["TrainRecipe", "apply_settings", "load_train_recipe", "train_from_recipe"]

_TOP_KEYS = {"name", "description", "dataset", "data_dir", "dataset_samples", "train_split", "test_split",
             "inputs", "outputs", "model", "training", "task"}
_TABLES = ("model", "training", "task")


@dataclass(frozen=True)
class TrainRecipe:
    """A validated training recipe (see the module docstring).

    Attributes
    ----------
    name : str
        Run name; the run folder defaults to ``runs/<name>``.
    dataset : str
        A dataset recipe (``.toml``, generated into ``data_dir`` when missing) or a dataset folder.
    model : table
        ``[model]``: ``name`` of a registered model (``MODELS``) and its constructor arguments.
    arguments : dict
        The model's constructor arguments (the ``[model]`` table without ``name``).
    training : table
        ``[training]``: the :class:`~pdekit.train.TrainingSettings`.
    description : str
        Free text.
    data_dir : str
        Folder the dataset recipe is generated into (default ``data/<dataset name>``).
    dataset_samples : int
        Cap every split of the dataset recipe at this many samples (the folder gets ``-n<N>``).
    train_split, test_split : str
        Splits trained and evaluated on.
    inputs, outputs : list of str
        Fields stacked as input and target channels (default: the dataset's roles).
    task : table
        ``[task]``: ``name`` of a registered task (``pdekit.train.task.TASKS``) and its arguments.
    """

    name: str
    dataset: str
    model: str
    arguments: dict
    training: TrainingSettings
    description: str = ""
    data_dir: str | None = None
    dataset_samples: int | None = None
    train_split: str = "train"
    test_split: str = "test"
    inputs: list[str] | None = None
    outputs: list[str] | None = None
    task: dict = field(default_factory=lambda: {"name": "supervised"})
    base: str = field(default=".", compare=False)  # folder that relative paths fall back to

    def to_dict(self) -> dict:
        """The resolved recipe as plain data (saved next to the run)."""
        out = dataclasses.asdict(self)
        out.pop("base")
        return out


def _model_signature(name: str) -> dict[str, inspect.Parameter]:
    """The constructor parameters of registered model ``name`` (without ``self``)."""
    parameters = inspect.signature(MODELS[name].__init__).parameters
    return {key: p for key, p in parameters.items() if key != "self"}


def _model_parameters(name: str) -> set[str]:
    return set(_model_signature(name))


def recipe_from_dict(data: dict, where: str = "training recipe", base: str = ".") -> TrainRecipe:
    """Validate a training recipe given as a dictionary."""
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise RecipeError(f"{where}: unknown key {unknown[0]!r}; valid keys are {sorted(_TOP_KEYS)}")
    for key in ("name", "dataset", "model"):
        if key not in data:
            raise RecipeError(f"{where}: missing required key {key!r}")
    model = dict(data["model"])
    name = model.pop("name", None)
    if name not in MODELS:
        raise RecipeError(f"{where}: [model] name must be one of {sorted(MODELS)}, got {name!r}")
    bad = sorted(set(model) - _model_parameters(name))
    if bad:
        raise RecipeError(f"{where}: [model] {name!r} takes no argument {bad[0]!r}; valid: "
                          f"{sorted(_model_parameters(name))}")
    training = validate_dataclass(TrainingSettings, data.get("training", {}), f"{where}: [training]")
    for key in ("inputs", "outputs"):
        value = data.get(key)
        if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
            raise RecipeError(f"{where}: `{key}` must be a list of field names, got {value!r}")
    task = dict(data.get("task", {}))
    task.setdefault("name", "supervised")
    try:
        build_task(task)
    except (TypeError, ValueError) as err:
        raise RecipeError(f"{where}: [task] {err}") from None
    samples = data.get("dataset_samples")
    if samples is not None and (isinstance(samples, bool) or not isinstance(samples, int) or samples < 1):
        raise RecipeError(f"{where}: `dataset_samples` must be a positive integer, got {samples!r}")
    return TrainRecipe(
        name=data["name"], dataset=data["dataset"], model=name, arguments=model, training=training,
        description=data.get("description", ""), data_dir=data.get("data_dir"), dataset_samples=samples,
        train_split=data.get("train_split", "train"), test_split=data.get("test_split", "test"),
        inputs=data.get("inputs"), outputs=data.get("outputs"), task=task, base=base,
    )


def apply_settings(data: dict, settings: Sequence[str]) -> dict:
    """A copy of the recipe table ``data`` with ``KEY=VALUE`` settings applied.

    ``KEY`` is a top-level key (``name``) or ``TABLE.KEY`` with ``TABLE`` one of ``model``,
    ``training``, ``task`` (``model.width``, ``training.lr``). ``VALUE`` is read as a TOML value
    (``32``, ``5e-4``, ``true``, ``[1, 2]``, ``"text"``); what does not parse is kept as text.
    Keys are checked by the validation that follows, as if written in the file.

    Raises
    ------
    RecipeError
        A setting without ``=``, an empty key, or a dotted key outside the three tables.
    """
    out = {key: dict(value) if key in _TABLES else value for key, value in data.items()}
    for setting in settings:
        key, sep, text = setting.partition("=")
        key = key.strip()
        if not sep or not key:
            raise RecipeError(f"--set: expected KEY=VALUE (e.g. model.width=32), got {setting!r}")
        table, dot, name = key.partition(".")
        if dot and (table not in _TABLES or not name or "." in name):
            raise RecipeError(f"--set {key!r}: a dotted key must be TABLE.KEY with TABLE one of "
                              f"{list(_TABLES)}")
        if dot:
            out.setdefault(table, {})[name] = toml_value(text.strip())
        elif key in _TABLES:
            raise RecipeError(f"--set {key!r}: set one key of the table, e.g. {key}.<key>=VALUE")
        else:
            out[key] = toml_value(text.strip())
    return out


def _read_run_recipe(folder: Path) -> dict:
    """The ``recipe.json`` of a run folder, in the shape of a TOML recipe."""
    path = folder / "recipe.json"
    if not path.is_file():
        raise RecipeError(f"{str(folder)!r} is a folder without recipe.json: not a training run folder")
    try:
        data = json.loads(path.read_text())
        model = {"name": data.pop("model"), **data.pop("arguments", {})}
    except (ValueError, KeyError, TypeError):
        raise RecipeError(f"{path}: not a recipe written by pdekit train") from None
    return {**data, "model": model}


def load_train_recipe(path: str | os.PathLike, settings: Sequence[str] = ()) -> TrainRecipe:
    """Read and validate a TOML training recipe, or the ``recipe.json`` of a run folder (the
    recipe it was trained with, ``--set`` changes included), with ``KEY=VALUE`` ``settings``
    applied first (:func:`apply_settings`)."""
    path = Path(path)
    if path.is_dir():
        data, where, base = _read_run_recipe(path), f"run {path.name}", "."
    else:
        data, where = read_toml(path, "training recipe"), f"training recipe {path.name}"
        base = str(path.resolve().parent.parent)
    data = apply_settings(data, settings)
    return recipe_from_dict(data, where + (" with --set" if settings else ""), base=base)


def _resolve(path: str, base: str) -> Path:
    candidate = Path(path)
    if candidate.is_absolute() or candidate.exists():
        return candidate
    fallback = Path(base) / candidate
    return fallback if fallback.exists() else candidate


def prepare_dataset(recipe: TrainRecipe, progress: bool = True, workers: int = 1,
                    device: str | torch.device = "cpu") -> Path:
    """The dataset folder of ``recipe``: generated from its dataset recipe when needed (with
    ``workers`` processes; more than one needs the ``if __name__ == "__main__"`` idiom in scripts).

    On a GPU ``device`` the problems whose solver runs there (``runs_on_device``) are solved on
    it by one process, a shard at a time where the samples do not depend on the batch
    (:func:`pdekit.data.generate`'s ``device`` and ``batch``); the others on the CPU."""
    source = _resolve(recipe.dataset, recipe.base)
    if source.suffix != ".toml":
        if not source.is_dir():
            raise FileNotFoundError(f"train: the dataset folder {str(source)!r} does not exist")
        return source
    dataset_recipe = load_recipe(source)
    name = dataset_recipe.name
    if recipe.dataset_samples is not None:
        dataset_recipe = dataset_recipe.replace(samples=recipe.dataset_samples)
        name = f"{name}-n{recipe.dataset_samples}"
    folder = Path(recipe.data_dir or Path("data") / name)
    problem, options = PROBLEMS[dataset_recipe.pde], {}
    if torch.device(device).type != "cpu" and problem.runs_on_device:
        options["device"], workers = device, 1  # one process keeps the device busy
        if problem.batch_invariant(dataset_recipe.parameters):
            options["batch"] = dataset_recipe.samples_per_shard
    generate(dataset_recipe, folder, workers=workers, progress=progress, **options)
    return folder


# [training] settings a resumed run may change (epochs only under a schedule that does not depend
# on it): the rest define the optimisation it continues
_RESUMABLE_CHANGES = {"epochs", "eval_every", "checkpoint_every", "preload", "num_workers", "compile"}


def _check_resumable(recipe: TrainRecipe, out: Path) -> None:
    """Resuming ``out`` with another model, other model arguments or other optimisation settings
    than it was trained with is a :class:`RecipeError` naming the first difference (rather than
    a state-dict mismatch deep in torch, or a ``recipe.json`` that no longer tells the truth)."""
    saved_path = out / "recipe.json"
    if not saved_path.is_file():
        return
    saved = json.loads(saved_path.read_text())
    ours = json.loads(json.dumps(recipe.to_dict(), default=str))
    hint = f"resume from the run folder itself (`pdekit train {out} --resume`)"
    if saved.get("model") != ours["model"]:
        raise RecipeError(f"train --resume: {out} holds a {saved.get('model')!r} model, the recipe "
                          f"asks for {ours['model']!r}; {hint}")
    signature = _model_signature(recipe.model).values()
    defaults = {  # what a key left out of one of the two recipes stood for
        "arguments": {p.name: p.default for p in signature if p.default is not inspect.Parameter.empty},
        "training": {f.name: f.default for f in dataclasses.fields(TrainingSettings)},
    }
    defaults = json.loads(json.dumps(defaults, default=str))
    resumable = set(_RESUMABLE_CHANGES)
    if recipe.training.scheduler in EPOCH_SCHEDULES:  # their learning rate is a function of epochs
        resumable.discard("epochs")
    for table, skip in (("arguments", set()), ("training", resumable)):
        theirs = {**defaults[table], **saved.get(table, {})}
        mine = {**defaults[table], **ours[table]}
        for key in sorted((set(theirs) | set(mine)) - skip):
            if theirs.get(key) != mine.get(key):
                what = "model" if table == "arguments" else "training"
                raise RecipeError(f"train --resume: {out} was trained with {what} {key} = "
                                  f"{theirs.get(key)!r}, the recipe asks for {mine.get(key)!r}; {hint}")


def train_from_recipe(recipe: TrainRecipe | str | os.PathLike, *, out: str | os.PathLike | None = None,
                      device: str = "cpu", resume: bool = False, progress: bool = True,
                      workers: int = 1, max_time: float | None = None, **overrides) -> Trainer:
    """Run (or resume) the training of ``recipe``; return the finished :class:`Trainer`.

    ``out`` defaults to ``runs/<name>``; the resolved recipe is written there as
    ``recipe.json``. ``overrides`` replace ``[training]`` settings (e.g. ``epochs=5``);
    ``workers`` processes generate the dataset if it is missing. ``max_time`` (seconds) is
    the training's wall-clock budget (:meth:`Trainer.fit`); resume to continue.
    """
    if not isinstance(recipe, TrainRecipe):
        recipe = load_train_recipe(recipe)
    if overrides:
        recipe = dataclasses.replace(recipe, training=dataclasses.replace(recipe.training, **overrides))
    out = Path(out or Path("runs") / recipe.name)
    if resume:
        _check_resumable(recipe, out)
    folder = prepare_dataset(recipe, progress=progress, workers=workers, device=device)
    train = open_dataset(folder, recipe.train_split)
    test = open_dataset(folder, recipe.test_split)
    torch.manual_seed(recipe.training.seed)
    model = build_model(recipe.model, **recipe.arguments)
    metadata = {"recipe": recipe.to_dict(), "dataset": str(folder), "test_split": recipe.test_split}
    trainer = Trainer(model, train, test, recipe.training, inputs=recipe.inputs, outputs=recipe.outputs,
                      out=out, device=device, resume=resume, metadata=metadata, progress=progress,
                      task=build_task(recipe.task))
    if trainer.rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        (out / "recipe.json").write_text(json.dumps(recipe.to_dict(), indent=2, default=str) + "\n")
    trainer.fit(max_time=max_time)
    return trainer
