"""What the one :class:`~pdekit.train.Trainer` optimises, and how it scores a model.

A :class:`Task` turns datasets into batches, a model and a batch into a loss, and a model into
test metrics and a report. The base class is the supervised field-to-field task (per-sample
relative L2 between the prediction and the output fields, Gaussian normalisation around the
model); methods that train differently (a rollout model, an unsupervised preconditioner, a
physics-only loss) subclass it, register it with :func:`register_task`, and are named in a
training recipe's ``[task]`` table::

    [task]
    name = "dcdm"          # a registered task; the other keys are its constructor arguments
    depth = 2

The task's name and arguments are stored in the checkpoint (``metadata["task"]``), so ``pdekit
evaluate`` rebuilds the task and calls :meth:`Task.report` and :meth:`Task.plot`.
"""

from __future__ import annotations

import copy
import inspect
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import torch

from pdekit.models.normalization import NormalizedModel
from pdekit.train.batches import FieldBatches, field_statistics
from pdekit.train.evaluate import evaluate, per_sample_metrics, plot_predictions
from pdekit.train.metrics import mse, relative_l2

__all__ = ["TASKS", "BatchSource", "Task", "build_task", "register_task", "task_spec"]

TASKS: dict[str, type[Task]] = {}


class BatchSource(Protocol):
    """Training or test batches: tuples of tensors, in a given sample order."""

    def __len__(self) -> int: ...

    def batches(self, batch_size: int, order: torch.Tensor | None = None, rank: int = 0,
                world: int = 1) -> Iterator[tuple[torch.Tensor, ...]]: ...


def register_task(name: str):
    """Class decorator: register a :class:`Task` subclass under ``name`` and record the keyword
    arguments each instance is built with (saved in checkpoints)."""

    def decorate(cls):
        if name in TASKS:
            raise ValueError(f"register_task: the name {name!r} is taken by {TASKS[name].__name__}")
        signature = inspect.signature(cls.__init__)
        original = cls.__init__

        def __init__(self, *args, **kwargs):  # noqa: N807
            bound = signature.bind(self, *args, **kwargs)
            original(self, *args, **kwargs)
            arguments = dict(bound.arguments)
            arguments.pop("self")
            self.arguments = copy.deepcopy(arguments)

        __init__.__doc__ = original.__doc__
        __init__.__signature__ = signature
        cls.__init__ = __init__
        cls.name = name
        TASKS[name] = cls
        return cls

    return decorate


def task_parameters(name: str) -> set[str]:
    """The constructor arguments of the registered task ``name``."""
    return {p for p in inspect.signature(TASKS[name].__init__).parameters if p != "self"}


def build_task(spec: dict | None) -> Task:
    """The task of a recipe's ``[task]`` table or a checkpoint's ``metadata["task"]``
    (``{"name": ..., **arguments}``; None or no name: the supervised task)."""
    import pdekit.train.tasks  # noqa: F401  (registers the method-specific tasks)

    spec = dict(spec or {})
    name = spec.pop("name", "supervised")
    if name not in TASKS:
        raise ValueError(f"build_task: unknown task {name!r}; available: {sorted(TASKS)}")
    bad = sorted(set(spec) - task_parameters(name))
    if bad:
        raise ValueError(f"build_task: task {name!r} takes no argument {bad[0]!r}; valid: "
                         f"{sorted(task_parameters(name))}")
    return TASKS[name](**copy.deepcopy(spec))


def task_spec(task: Task) -> dict:
    """``{"name": ..., **arguments}``: what :func:`build_task` rebuilds ``task`` from."""
    return {"name": task.name, **copy.deepcopy(getattr(task, "arguments", {}))}


@register_task("supervised")
class Task:
    """Supervised field-to-field training: the default task.

    Batches are ``(x, y)`` pairs of stacked input and output fields
    (:class:`~pdekit.train.batches.FieldBatches`); the loss is the recipe's ``loss`` (relative
    L2 or MSE per sample, on de-normalised fields); the model is wrapped in a
    :class:`~pdekit.models.normalization.NormalizedModel` with the training set's statistics
    (``settings.normalization``); best checkpoints are chosen by the test relative L2.

    Subclasses override what differs. Class attributes ``select`` (the key of
    :meth:`evaluate`'s dictionary that picks ``best.pt``) and ``maximize`` (bigger is better).
    """

    name = "supervised"
    select = "test_relative_l2"
    maximize = False

    def __init__(self):
        pass

    # -- training ----------------------------------------------------------------------------
    def make_batches(self, dataset, *, inputs: list[str], outputs: list[str], settings) -> BatchSource:
        """The batch source of ``dataset`` (default: field-to-field pairs)."""
        return FieldBatches(dataset, inputs, outputs, preload=settings.preload,
                            num_workers=settings.num_workers)

    def wrap_model(self, model: torch.nn.Module, batches: BatchSource, dataset, settings) -> torch.nn.Module:
        """The module the Trainer optimises and saves (default: ``model`` inside Gaussian
        normalisation of its inputs and outputs, per ``settings.normalization``)."""
        stats = field_statistics(batches, settings.normalization, dataset)
        return NormalizedModel(model, **stats) if stats is not None else model

    def loss(self, model: torch.nn.Module, batch: tuple[torch.Tensor, ...], settings) -> torch.Tensor:
        """The per-sample training loss of ``batch`` (the Trainer takes its mean)."""
        x, y = batch
        pred = model(x)
        return (relative_l2 if settings.loss == "relative_l2" else mse)(pred.float(), y)

    def evaluate(self, model: torch.nn.Module, batches: BatchSource, *, device: torch.device,
                 settings) -> dict[str, float]:
        """Test metrics, keys starting with ``test_`` (one of them :attr:`select`)."""
        values = per_sample_metrics(model, batches, device=device, names=("relative_l2", "mse"),
                                    autocast=settings.amp, batch_size=max(settings.batch_size, 64))
        errors = values["relative_l2"]
        return {"test_relative_l2": float(errors.mean()),
                "test_relative_l2_std": float(errors.std()) if len(errors) > 1 else 0.0,
                "test_mse": float(values["mse"].mean())}

    # -- after training: `pdekit evaluate` ----------------------------------------------------
    def report(self, model: torch.nn.Module, dataset, *, device: str | torch.device = "cpu",
               metadata: dict | None = None) -> dict[str, Any]:
        """``{"metrics": {...}, ...}`` of ``model`` on ``dataset`` (what ``pdekit evaluate``
        writes as JSON); ``metadata`` is the checkpoint's (e.g. the trained ``inputs``)."""
        inputs, outputs = _fields(dataset, metadata)
        return evaluate(model, dataset, inputs=inputs, outputs=outputs, device=device)

    def summary(self, result: dict) -> str:
        """One line of :meth:`report`'s result for the terminal."""
        m = result["metrics"]
        return (f"relative L2 {m['relative_l2']:.4g} +- {m['relative_l2_std']:.2g} (median "
                f"{m['relative_l2_median']:.4g}), MSE {m['mse']:.3g}, "
                f"{m['seconds_per_sample'] * 1e3:.3g} ms per sample")

    def plot(self, model: torch.nn.Module, dataset, path: str | os.PathLike, *,
             device: str | torch.device = "cpu", metadata: dict | None = None) -> Path | None:
        """A PNG of the model on a few samples of ``dataset`` (None if the task draws nothing)."""
        inputs, outputs = _fields(dataset, metadata)
        return plot_predictions(model, dataset, path, inputs=inputs, outputs=outputs,
                                samples=range(min(3, len(dataset))), device=device)


def _fields(dataset, metadata: dict | None) -> tuple[list[str], list[str]]:
    metadata = metadata or {}
    return (metadata.get("inputs") or dataset.inputs, metadata.get("outputs") or dataset.outputs)
