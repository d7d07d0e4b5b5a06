"""Optional ``torch.compile`` of the dense, bandwidth-bound kernels on CUDA.

On CUDA, eager PyTorch launches one kernel per operation, so a stencil written as seven
sliced updates streams the grid seven times. Compiled with Inductor, the same functional
expression becomes one fused kernel that reads ``x`` once and writes ``y`` once (the byte
floor of the linear-algebra brief). On the CPU the eager in-place versions are used (no
compiler needed at run time).

Set the environment variable ``PDEKIT_COMPILE=0`` to disable compilation everywhere.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import types
import warnings
from collections.abc import Callable

import torch

__all__ = ["compile_enabled", "cuda_compiled"]


@functools.cache
def _triton_available() -> bool:
    return importlib.util.find_spec("triton") is not None


def compile_enabled(device: torch.device) -> bool:
    """Whether kernels on ``device`` are compiled (CUDA with Triton, unless disabled)."""
    if os.environ.get("PDEKIT_COMPILE", "1").lower() in ("0", "false", "no", "off"):
        return False
    return device.type == "cuda" and _triton_available()


def graphs_enabled() -> bool:
    """Whether solvers may capture CUDA graphs (``PDEKIT_CUDA_GRAPHS=0`` disables them)."""
    return os.environ.get("PDEKIT_CUDA_GRAPHS", "1").lower() not in ("0", "false", "no", "off")


def _fresh_copy(fn: Callable) -> Callable:
    """``fn`` with its own code object, so Dynamo keeps a separate cache for it."""
    copy = types.FunctionType(
        fn.__code__.replace(), fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__
    )
    copy.__kwdefaults__ = fn.__kwdefaults__
    return copy


def _signature(value) -> object:
    """What a compiled specialisation depends on: tensor shapes, strides, dtypes, devices,
    and the values of the other arguments."""
    if isinstance(value, torch.Tensor):
        return ("tensor", tuple(value.shape), value.stride(), value.dtype, value.device)
    if isinstance(value, (list, tuple)):
        return tuple(_signature(v) for v in value)
    return value


def cuda_compiled(fn: Callable) -> Callable:
    """Wrap ``fn`` so that calls on CUDA tensors run a compiled version.

    The first tensor argument decides the device. Each distinct signature (shapes, strides,
    dtypes, scalar arguments) gets its own static-shape compilation, with its own Dynamo
    cache: static kernels are several times faster than dynamic-shape ones for these
    stencils, and a solver sees few shapes (a multigrid hierarchy, a test suite: tens).
    If compiling fails, the wrapper warns once and runs ``fn`` eagerly from then on.
    CPU calls always run ``fn`` eagerly.
    """
    specialisations: dict[object, Callable] = {}
    failed = False

    @functools.wraps(fn)
    def wrapper(*args):
        nonlocal failed
        first = next(a for a in args if isinstance(a, torch.Tensor))
        if failed or not compile_enabled(first.device):
            return fn(*args)
        key = _signature(args)
        compiled = specialisations.get(key)
        if compiled is None:
            compiled = torch.compile(_fresh_copy(fn), dynamic=False, fullgraph=True)
            specialisations[key] = compiled
        try:
            return compiled(*args)
        except Exception as err:  # compilation problems must never break a solve
            if torch.cuda.is_current_stream_capturing():
                raise
            failed = True
            warnings.warn(
                f"pdekit: torch.compile of {fn.__name__} failed ({type(err).__name__}: "
                f"{str(err).splitlines()[0][:200] if str(err) else ''}); running it eagerly",
                RuntimeWarning,
                stacklevel=2,
            )
            return fn(*args)

    wrapper.eager = fn  # type: ignore[attr-defined]
    return wrapper
