"""Error metrics of learned solvers. Each returns one value per sample, shape ``(B,)``
(:func:`per_time_step_error`: one per time step); average them with ``.mean()``, never a sum.

Conventions: ``pred`` and ``target`` have shape ``(B, C, *space)`` (channels second; a
time-dependent field may carry time as a channel or, for :func:`per_time_step_error`, as
axis 1). ``spatial_dims`` counts the trailing spatial axes (default: all after the channel
axis). Definitions follow PDEBench (Takamoto et al. 2022: nRMSE, cRMSE, bRMSE, fRMSE) and
The Well (Ohana et al. 2024: VRMSE).
"""

from __future__ import annotations

import torch

__all__ = [
    "FREQUENCY_BANDS",
    "boundary_rmse",
    "conserved_quantity_error",
    "frequency_band_rmse",
    "max_error",
    "mse",
    "nrmse",
    "per_time_step_error",
    "relative_l2",
    "rmse",
    "vrmse",
]

# |k| ranges (integer wavenumbers) of PDEBench's fRMSE bands: low k < 4, mid 4..11, high >= 12
FREQUENCY_BANDS = {"low": (0.0, 4.0), "mid": (4.0, 12.0), "high": (12.0, float("inf"))}


def _check(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"metrics: `pred` {tuple(pred.shape)} and `target` {tuple(target.shape)} "
                         "differ in shape")
    if pred.ndim < 2:
        raise ValueError(f"metrics: expected a batch (B, ...), got shape {tuple(pred.shape)}")


def relative_l2(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """``||pred - target||_2 / ||target||_2`` per sample, over all non-batch axes."""
    _check(pred, target)
    diff = (pred - target).flatten(1).norm(dim=1)
    return diff / target.flatten(1).norm(dim=1).clamp_min(eps)


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error per sample."""
    _check(pred, target)
    return (pred - target).flatten(1).square().mean(dim=1)


def rmse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Root-mean-square error per sample."""
    return mse(pred, target).sqrt()


def nrmse(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Normalised RMSE (PDEBench): per channel ``||pred - target|| / ||target||``, averaged
    over channels. Equals :func:`relative_l2` for one channel."""
    _check(pred, target)
    p, t = pred.flatten(2), target.flatten(2)
    return ((p - t).norm(dim=2) / t.norm(dim=2).clamp_min(eps)).mean(dim=1)


def max_error(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Largest absolute error per sample."""
    _check(pred, target)
    return (pred - target).flatten(1).abs().amax(dim=1)


def _spatial(pred: torch.Tensor, spatial_dims: int | None) -> int:
    d = pred.ndim - 2 if spatial_dims is None else spatial_dims
    if not 1 <= d <= pred.ndim - 1:
        raise ValueError(f"metrics: `spatial_dims` must be in [1, {pred.ndim - 1}], got {d}")
    return d


def boundary_rmse(pred: torch.Tensor, target: torch.Tensor, spatial_dims: int | None = None) -> torch.Tensor:
    """RMSE over the grid's boundary nodes (first and last index of any spatial axis)."""
    _check(pred, target)
    d = _spatial(pred, spatial_dims)
    space = pred.shape[-d:]
    mask = torch.zeros(space, dtype=torch.bool, device=pred.device)
    for axis in range(d):
        index = [slice(None)] * d
        index[axis] = 0
        mask[tuple(index)] = True
        index[axis] = -1
        mask[tuple(index)] = True
    err = (pred - target).square()[..., mask]
    return err.flatten(1).mean(dim=1).sqrt()


def conserved_quantity_error(pred: torch.Tensor, target: torch.Tensor,
                             spatial_dims: int | None = None) -> torch.Tensor:
    """Error of the spatial mean (PDEBench's cRMSE): RMS over the remaining axes of
    ``mean_x(pred) - mean_x(target)``."""
    _check(pred, target)
    d = _spatial(pred, spatial_dims)
    axes = tuple(range(-d, 0))
    diff = pred.mean(dim=axes) - target.mean(dim=axes)
    return diff.flatten(1).square().mean(dim=1).sqrt() if diff.ndim > 1 else diff.abs()


def frequency_band_rmse(pred: torch.Tensor, target: torch.Tensor, spatial_dims: int | None = None,
                        bands: dict | None = None) -> dict[str, torch.Tensor]:
    """RMSE carried by each band of spatial wavenumbers |k| (PDEBench's fRMSE).

    With ``E = fftn(pred - target, norm="ortho")`` over the spatial axes and integer
    wavenumbers ``k``, band ``[k0, k1)`` gets ``sqrt(sum_{k0 <= |k| < k1} |E_k|^2 / N)`` (``N``
    grid points; mean over the other axes). By Parseval the squares of the bands add up to
    the squared RMSE when the bands cover all wavenumbers.
    """
    _check(pred, target)
    d = _spatial(pred, spatial_dims)
    bands = FREQUENCY_BANDS if bands is None else bands
    axes = tuple(range(-d, 0))
    space = pred.shape[-d:]
    diff = (pred - target).to(torch.float64 if pred.dtype == torch.float64 else torch.float32)
    energy = torch.fft.fftn(diff, dim=axes, norm="ortho").abs().square()
    freqs = [torch.fft.fftfreq(n, d=1.0 / n, device=pred.device) for n in space]
    k = torch.sqrt(sum(g.square() for g in torch.meshgrid(*freqs, indexing="ij")))
    n_points = float(torch.tensor(space).prod())
    out = {}
    for name, (lo, hi) in bands.items():
        mask = (k >= lo) & (k < hi)
        band = energy[..., mask].sum(dim=-1) / n_points  # (B, ...) mean square in the band
        out[name] = band.flatten(1).mean(dim=1).sqrt() if band.ndim > 1 else band.sqrt()
    return out


def vrmse(pred: torch.Tensor, target: torch.Tensor, spatial_dims: int | None = None,
          eps: float = 1e-7) -> torch.Tensor:
    """Variance-scaled RMSE (The Well): ``sqrt(mean_x (pred - target)^2 / (var_x(target) + eps))``
    per channel, averaged over channels."""
    _check(pred, target)
    d = _spatial(pred, spatial_dims)
    axes = tuple(range(-d, 0))
    mse_x = (pred - target).square().mean(dim=axes)
    var_x = target.var(dim=axes, unbiased=False)
    ratio = (mse_x / (var_x + eps)).sqrt()
    return ratio.flatten(1).mean(dim=1) if ratio.ndim > 1 else ratio


def per_time_step_error(pred: torch.Tensor, target: torch.Tensor, time_dim: int = 1) -> torch.Tensor:
    """Relative L2 error at each time step of a rollout, averaged over the batch: ``(T,)``.

    ``pred`` and ``target`` are ``(B, ..., T, ...)`` with time on axis ``time_dim``.
    """
    _check(pred, target)
    p = pred.movedim(time_dim, 1)
    t = target.movedim(time_dim, 1)
    steps = p.shape[1]
    errors = relative_l2(p.reshape(-1, *p.shape[2:]), t.reshape(-1, *t.shape[2:]))
    return errors.reshape(-1, steps).mean(dim=0)
