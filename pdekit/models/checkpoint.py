"""Self-describing checkpoints: model name, pdekit version, constructor arguments, weights.

A checkpoint is a ``torch.save`` of a plain dictionary::

    {"format": "pdekit-checkpoint", "format_version": 1, "pdekit_version": "...",
     "model": "deeponet", "arguments": {...}, "state_dict": {...},
     "normalization": {"input_mean": ..., ...} or None,
     "metadata": {...},            # e.g. dataset, input/output fields, metrics
     "training": {...}}            # optimiser, scheduler, epoch, RNG (written by the Trainer)

so :func:`load_model` rebuilds the model with no code (neuraloperator's habit). Only tensors
and plain Python values are stored: checkpoints load with ``weights_only=True``.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import torch

from pdekit._version import __version__
from pdekit.models.normalization import NormalizedModel
from pdekit.models.registry import build_model, model_arguments, model_name

__all__ = ["CheckpointError", "checkpoint_dict", "load_checkpoint", "load_model", "save_checkpoint"]

FORMAT = "pdekit-checkpoint"


class CheckpointError(ValueError):
    """A file is not a pdekit checkpoint, or holds another model than the one expected."""


def checkpoint_dict(model: torch.nn.Module, metadata: dict | None = None, **extra) -> dict:
    """The checkpoint dictionary of ``model`` (a registered model, possibly normalised)."""
    model = _unwrap(model)
    normalization = None
    if isinstance(model, NormalizedModel):
        normalization = model.statistics()
        model = _unwrap(model.model)
    return {
        "format": FORMAT, "format_version": 1, "pdekit_version": __version__,
        "model": model_name(model), "arguments": model_arguments(model),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "normalization": normalization, "metadata": dict(metadata or {}), **extra,
    }


def save_checkpoint(path: str | os.PathLike, model: torch.nn.Module, metadata: dict | None = None,
                    **extra) -> Path:
    """Write ``model``'s checkpoint atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(checkpoint_dict(model, metadata, **extra), tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint dictionary, checking that it is one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle errors, truncated files, other files
        if not zipfile.is_zipfile(path):
            raise CheckpointError(f"{path.name} is not a readable pdekit checkpoint (not a file written by "
                                  "torch.save)") from None
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0].split(". ")[0]
        raise CheckpointError(f"{path.name} is not a readable pdekit checkpoint ({reason})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path.name} is not a pdekit checkpoint (no '{FORMAT}' format tag)")
    return data


def load_model(path: str | os.PathLike, *, expected: str | None = None,
               device: str | torch.device = "cpu") -> torch.nn.Module:
    """Rebuild the model saved in ``path`` (in eval mode, on ``device``).

    Parameters
    ----------
    expected : str, optional
        Registry name the checkpoint must hold (e.g. ``"deeponet"``); another raises
        :class:`CheckpointError` naming both.
    """
    data = load_checkpoint(path)
    if expected is not None and data["model"] != expected:
        raise CheckpointError(f"{Path(path).name} holds a {data['model']!r} model, expected {expected!r}")
    model = build_model(data["model"], **data["arguments"])
    model.load_state_dict(data["state_dict"])
    if data.get("normalization") is not None:
        model = NormalizedModel(model, **data["normalization"])
    model.metadata = data.get("metadata", {})
    return model.to(device).eval()


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    while isinstance(model, torch.nn.parallel.DistributedDataParallel) or hasattr(model, "_orig_mod"):
        model = model.module if hasattr(model, "module") else model._orig_mod
    return model
