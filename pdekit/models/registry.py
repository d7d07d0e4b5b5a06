"""The model registry: every named model is built from its constructor arguments alone.

``@register_model("deeponet")`` on a ``torch.nn.Module`` subclass records the keyword
arguments each instance was built with (``model.arguments``), so a checkpoint can rebuild the
model with no code (:func:`pdekit.models.checkpoint.load_model`).
"""

from __future__ import annotations

import copy
import functools
import importlib
import inspect

import torch

__all__ = ["MODELS", "build_model", "model_arguments", "model_name", "register_model"]

#: models whose modules pull in a heavy stack (torch-geometric: about 1.5 s to import), imported
#: the first time one of them is looked up or the registry is listed
_LAZY_MODULES = {"gnn-uniform": "pdekit.models.mmpde", "mmpde": "pdekit.models.mmpde"}


class _Registry(dict):
    """``name -> model class``; the models of ``_LAZY_MODULES`` register on first use."""

    def _load(self, name: str | None = None) -> None:
        for key in ([name] if name is not None else list(_LAZY_MODULES)):
            if key in _LAZY_MODULES and not dict.__contains__(self, key):
                importlib.import_module(_LAZY_MODULES[key])

    def __missing__(self, key):
        self._load(key)
        if dict.__contains__(self, key):
            return dict.__getitem__(self, key)
        raise KeyError(key)

    def __contains__(self, key) -> bool:
        if isinstance(key, str):
            self._load(key)
        return dict.__contains__(self, key)

    def get(self, key, default=None):
        return self[key] if key in self else default

    def __iter__(self):
        self._load()
        return dict.__iter__(self)

    def __len__(self) -> int:
        self._load()
        return dict.__len__(self)

    def keys(self):
        self._load()
        return dict.keys(self)

    def values(self):
        self._load()
        return dict.values(self)

    def items(self):
        self._load()
        return dict.items(self)


MODELS: dict[str, type[torch.nn.Module]] = _Registry()


def register_model(name: str):
    """Class decorator: register ``cls`` under ``name`` and record its constructor arguments."""

    def decorate(cls):
        if dict.__contains__(MODELS, name):
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
