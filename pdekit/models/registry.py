"""The model registry: every named model is built from its constructor arguments alone.

``@register_model("deeponet")`` on a ``torch.nn.Module`` subclass records the keyword
arguments each instance was built with (``model.arguments``), so a checkpoint can rebuild the
model with no code (:func:`pdekit.models.checkpoint.load_model`).
"""

from __future__ import annotations

import copy
import functools
import inspect

import torch

__all__ = ["MODELS", "build_model", "model_arguments", "model_name", "register_model"]

MODELS: dict[str, type[torch.nn.Module]] = {}


def register_model(name: str):
    """Class decorator: register ``cls`` under ``name`` and record its constructor arguments."""

    def decorate(cls):
        if name in MODELS:
            raise ValueError(f"register_model: the name {name!r} is taken by {MODELS[name].__name__}")
        signature = inspect.signature(cls.__init__)
        original = cls.__init__

        @functools.wraps(original)
        def __init__(self, *args, **kwargs):  # noqa: N807
            bound = signature.bind(self, *args, **kwargs)
            original(self, *args, **kwargs)
            arguments = dict(bound.arguments)
            arguments.pop("self")
            self._pdekit_arguments = copy.deepcopy(arguments)

        cls.__init__ = __init__
        cls.model_name = name
        MODELS[name] = cls
        return cls

    return decorate


def model_name(model: torch.nn.Module) -> str:
    """The registry name of ``model`` (unwrapping DDP and ``torch.compile``)."""
    model = _unwrap(model)
    name = getattr(type(model), "model_name", None)
    if name is None:
        raise TypeError(f"{type(model).__name__} is not a registered pdekit model")
    return name


def model_arguments(model: torch.nn.Module) -> dict:
    """The keyword arguments ``model`` was constructed with (a copy)."""
    return copy.deepcopy(_unwrap(model)._pdekit_arguments)


def build_model(name: str, **arguments) -> torch.nn.Module:
    """Build the registered model ``name`` with ``arguments``."""
    if name not in MODELS:
        raise ValueError(f"build_model: unknown model {name!r}; available: {sorted(MODELS)}")
    cls = MODELS[name]
    try:
        return cls(**copy.deepcopy(arguments))
    except TypeError as err:
        raise ValueError(f"build_model: bad arguments for {name!r}: {err}") from None


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    while True:
        if isinstance(model, torch.nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):  # torch.compile
            model = model._orig_mod
        else:
            return model
