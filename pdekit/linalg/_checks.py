"""Input validation shared by the solvers: early, clear errors naming the argument."""

from __future__ import annotations

import math

import torch


def check_tolerance(fn: str, name: str, value: float) -> float:
    """Return ``value`` as a float, or raise if it is negative or not finite."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{fn}: `{name}` must be a real number, got {value!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{fn}: `{name}` must be >= 0 and finite, got {value!r}")
    return value


def check_maxiter(fn: str, maxiter: int | None, default: int) -> int:
    """Return ``maxiter`` (or ``default`` when None), raising unless it is a positive int."""
    if maxiter is None:
        return default
    if isinstance(maxiter, bool) or not isinstance(maxiter, int) or maxiter < 1:
        raise ValueError(f"{fn}: `maxiter` must be a positive integer, got {maxiter!r}")
    return maxiter


def check_positive_int(fn: str, name: str, value: int) -> int:
    """Raise unless ``value`` is a positive int."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{fn}: `{name}` must be a positive integer, got {value!r}")
    return value


def check_finite(fn: str, name: str, tensor: torch.Tensor) -> None:
    """Raise ``ValueError`` if ``tensor`` holds NaN or Inf (one device sync)."""
    if not bool(torch.isfinite(tensor).all()):
        bad = "NaN" if bool(torch.isnan(tensor).any()) else "Inf"
        raise ValueError(f"{fn}: `{name}` contains {bad} values; all entries must be finite")


def as_tensor_like(fn: str, name: str, value, dtype: torch.dtype, device: torch.device):
    """Convert a NumPy array or sequence to a tensor; check a tensor's dtype and device."""
    if isinstance(value, torch.Tensor):
        if value.dtype != dtype:
            raise TypeError(
                f"{fn}: `{name}` has dtype {value.dtype} but the operator has dtype {dtype}; "
                f"convert one of them (`{name}.to({dtype})` or `A.to(dtype={value.dtype})`)"
            )
        if value.device != device:
            raise ValueError(
                f"{fn}: `{name}` is on {value.device} but the operator is on {device}; "
                f"move one of them (`{name}.to('{device}')` or `A.to('{value.device}')`)"
            )
        return value
    try:
        return torch.as_tensor(value, dtype=dtype, device=device)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"{fn}: `{name}` must be a tensor or array, got {type(value)}") from err
