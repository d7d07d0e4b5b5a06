"""Validation of OT inputs (marginals, cost, regularisation): early, clear errors naming the
function and the argument, and the batched ``(B, n)``, ``(B, m)``, ``(B or 1, n, m)`` form the
solvers work on."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from pdekit.linalg._checks import check_finite

__all__ = ["OTProblem", "check_eps", "prepare_problem"]


@dataclass
class OTProblem:
    """Marginals and cost in batched form.

    ``a`` is ``(B, n)``, ``b`` is ``(B, m)`` (rescaled to the mass of ``a``), ``C`` is
    ``(B, n, m)`` or ``(1, n, m)`` when one cost is shared by the batch. ``batch_shape`` is
    ``()`` when no input had a batch dimension, else ``(B,)``.
    """

    a: torch.Tensor
    b: torch.Tensor
    C: torch.Tensor
    batch_shape: tuple[int, ...]

    @property
    def batch(self) -> int:
        return self.a.shape[0]

    @property
    def dtype(self) -> torch.dtype:
        return self.C.dtype

    @property
    def device(self) -> torch.device:
        return self.C.device

    def unbatch(self, x: torch.Tensor) -> torch.Tensor:
        """Drop the batch dimension again when the inputs had none."""
        return x[0] if not self.batch_shape else x


def check_eps(fn: str, eps: float, name: str = "eps") -> float:
    """Return ``eps`` as a float, or raise unless it is finite and > 0."""
    if isinstance(eps, torch.Tensor):
        if eps.numel() != 1:
            raise ValueError(f"{fn}: `{name}` must be a scalar, got a tensor of shape {tuple(eps.shape)}")
        eps = eps.item()
    try:
        value = float(eps)
    except (TypeError, ValueError):
        raise TypeError(f"{fn}: `{name}` must be a real number, got {eps!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{fn}: `{name}` must be > 0 and finite, got {eps!r}")
    return value


def _as_tensor(fn: str, name: str, value, dtype, device) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        if not value.dtype.is_floating_point:
            raise TypeError(f"{fn}: `{name}` must have a floating dtype, got {value.dtype}")
        if dtype is not None and value.dtype != dtype:
            raise TypeError(
                f"{fn}: `{name}` has dtype {value.dtype} but the other inputs have dtype {dtype}; "
                f"convert one of them (e.g. `{name}.to({dtype})`)"
            )
        if device is not None and value.device != device:
            raise ValueError(
                f"{fn}: `{name}` is on {value.device} but the other inputs are on {device}; "
                f"move one of them (e.g. `{name}.to('{device}')`)"
            )
        return value
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{fn}: `{name}` must be a tensor or array, got {type(value).__name__}") from err
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise TypeError(f"{fn}: `{name}` must hold real numbers, got dtype {array.dtype}")
    if dtype is None and np.issubdtype(array.dtype, np.floating):
        dtype = torch.from_numpy(np.zeros(0, dtype=array.dtype)).dtype
    return torch.as_tensor(array, dtype=dtype or torch.float64, device=device)


def _reference(values) -> tuple[torch.dtype | None, torch.device | None]:
    """dtype and device of the first tensor among ``values`` (the cost first)."""
    for value in values:
        if isinstance(value, torch.Tensor):
            return value.dtype, value.device
    return None, None


def prepare_problem(fn: str, a, b, C, *, allow_zero_mass: bool = True) -> OTProblem:
    """Validate ``a`` (``(n,)`` or ``(B, n)``), ``b`` (``(m,)`` or ``(B, m)``) and ``C``
    (``(n, m)`` or ``(B, n, m)``); return them in batched form.

    Raises ``ValueError`` for shape mismatches, NaN/Inf, negative entries, zero total mass and
    marginals of different total mass (beyond rounding: relative difference above
    ``sqrt(machine epsilon)``), ``TypeError`` for mixed dtypes.
    """
    dtype, device = _reference((C, a, b))
    C = _as_tensor(fn, "C", C, dtype, device)
    dtype, device = C.dtype, C.device
    a = _as_tensor(fn, "a", a, dtype, device)
    b = _as_tensor(fn, "b", b, dtype, device)
    if C.ndim not in (2, 3):
        raise ValueError(f"{fn}: `C` must be (n, m) or (B, n, m), got shape {tuple(C.shape)}")
    if a.ndim not in (1, 2) or b.ndim not in (1, 2):
        bad, arr = ("a", a) if a.ndim not in (1, 2) else ("b", b)
        raise ValueError(f"{fn}: `{bad}` must be (n,) or (B, n), got shape {tuple(arr.shape)}")
    n, m = C.shape[-2], C.shape[-1]
    if a.shape[-1] != n:
        raise ValueError(
            f"{fn}: `a` has {a.shape[-1]} entries but `C` has {n} rows (C.shape = {tuple(C.shape)})"
        )
    if b.shape[-1] != m:
        raise ValueError(
            f"{fn}: `b` has {b.shape[-1]} entries but `C` has {m} columns "
            f"(C.shape = {tuple(C.shape)})"
        )
    sizes = {x.shape[0] for x, nd in ((a, 2), (b, 2), (C, 3)) if x.ndim == nd}
    batched = bool(sizes)
    sizes.discard(1)
    if len(sizes) > 1:
        raise ValueError(
            f"{fn}: batch sizes differ: a {tuple(a.shape)}, b {tuple(b.shape)}, C {tuple(C.shape)}"
        )
    batch = sizes.pop() if sizes else 1
    if n == 0 or m == 0:
        raise ValueError(f"{fn}: `C` must have at least one row and one column, got {tuple(C.shape)}")
    check_finite(fn, "C", C)
    check_finite(fn, "a", a)
    check_finite(fn, "b", b)
    for name, x in (("a", a), ("b", b)):
        if bool((x < 0).any()):
            raise ValueError(f"{fn}: `{name}` has negative entries; marginals must be >= 0")
    a = a.reshape(-1, n).expand(batch, n)
    b = b.reshape(-1, m).expand(batch, m)
    C = C.reshape(-1, n, m)
    mass_a, mass_b = a.sum(1), b.sum(1)
    if bool((mass_a <= 0).any()) or bool((mass_b <= 0).any()):
        name = "a" if bool((mass_a <= 0).any()) else "b"
        raise ValueError(f"{fn}: `{name}` has zero total mass")
    rel = (mass_a - mass_b).abs() / torch.maximum(mass_a, mass_b)
    limit = math.sqrt(torch.finfo(dtype).eps)
    if bool((rel > limit).any()):
        i = int(torch.argmax(rel))
        where = f" (batch member {i})" if batched else ""
        raise ValueError(
            f"{fn}: the marginals `a` and `b` must have the same total mass, got "
            f"sum(a) = {float(mass_a[i]):.9g} and sum(b) = {float(mass_b[i]):.9g}{where}; "
            "normalise both (e.g. `a / a.sum()`), or use unbalanced OT"
        )
    if not allow_zero_mass and (bool((a == 0).any()) or bool((b == 0).any())):
        raise ValueError(f"{fn}: the marginals must be > 0")
    # remove the rounding-level mass difference, so the marginal violation can reach zero
    b = b * (mass_a / mass_b).unsqueeze(1)
    return OTProblem(a.contiguous(), b.contiguous(), C, (batch,) if batched else ())
