"""Cost matrices: between point clouds, between cells of a grid (discretised densities), and
between the pixels of images seen as distributions.

For ``p``-Wasserstein distances ``W_p^p = min_P <P, C>`` take ``C = |x - y|^p``: W1 with
:func:`euclidean_cost`, W2 (squared) with :func:`squared_euclidean_cost`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = [
    "euclidean_cost",
    "grid_cost",
    "grid_points",
    "image_distribution",
    "l1_cost",
    "squared_euclidean_cost",
]

_METRICS = ("sqeuclidean", "euclidean", "l1")


def _points(fn: str, x, y) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.as_tensor(x)
    y = torch.as_tensor(y, dtype=x.dtype, device=x.device)
    if not x.dtype.is_floating_point:
        x, y = x.double(), y.double()
    if x.ndim == 1:
        x = x.unsqueeze(-1)
    if y.ndim == 1:
        y = y.unsqueeze(-1)
    if x.ndim not in (2, 3) or y.ndim != x.ndim or x.shape[-1] != y.shape[-1]:
        raise ValueError(
            f"{fn}: `x` and `y` must be (n, d) and (m, d) (or batched (B, n, d), (B, m, d)) "
            f"with the same d, got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    return x, y


def _accumulate(x: torch.Tensor, y: torch.Tensor, term) -> torch.Tensor:
    """``sum_k term(x[..., :, None, k] - y[..., None, :, k])``, one coordinate at a time
    (exact differences; no ``(n, m, d)`` temporary)."""
    out = None
    for k in range(x.shape[-1]):
        diff = x[..., :, k].unsqueeze(-1) - y[..., :, k].unsqueeze(-2)
        value = term(diff)
        out = value if out is None else out.add_(value)
    return out


def squared_euclidean_cost(x, y) -> torch.Tensor:
    """``C_ij = ||x_i - y_j||_2^2`` for points ``x (n, d)``, ``y (m, d)`` (or batched).

    The W2 cost (POT's ``ot.dist(x, y)``). Computed from exact coordinate differences, so a
    zero distance is exactly zero.
    """
    x, y = _points("squared_euclidean_cost", x, y)
    return _accumulate(x, y, lambda d: d.square_())


def euclidean_cost(x, y) -> torch.Tensor:
    """``C_ij = ||x_i - y_j||_2``: the W1 cost for the Euclidean ground metric."""
    return squared_euclidean_cost(x, y).sqrt_()


def l1_cost(x, y) -> torch.Tensor:
    """``C_ij = ||x_i - y_j||_1`` (POT's ``ot.dist(x, y, metric='cityblock')``)."""
    x, y = _points("l1_cost", x, y)
    return _accumulate(x, y, lambda d: d.abs_())


def grid_points(
    shape: Sequence[int] | int,
    *,
    lower: float = 0.0,
    upper: float = 1.0,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Cell centres of a uniform grid on ``[lower, upper]^d``, ``(prod(shape), d)``, in C
    order (last axis fastest), matching ``density.reshape(-1)``."""
    shape = (shape,) if isinstance(shape, int) else tuple(int(s) for s in shape)
    if not shape or any(s < 1 for s in shape):
        raise ValueError(f"grid_points: `shape` must be positive sizes, got {shape}")
    if not upper > lower:
        raise ValueError(f"grid_points: `upper` must exceed `lower`, got {lower} and {upper}")
    axes = [lower + (upper - lower) * (torch.arange(s, dtype=dtype, device=device) + 0.5) / s
            for s in shape]
    mesh = torch.meshgrid(*axes, indexing="ij")
    return torch.stack([m.reshape(-1) for m in mesh], dim=1)


def grid_cost(
    shape: Sequence[int] | int,
    *,
    metric: str = "sqeuclidean",
    lower: float = 0.0,
    upper: float = 1.0,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Cost between the cells of a grid, for densities discretised on it.

    ``metric="sqeuclidean"`` gives the W2 cost (``<P, C> = W2^2``), ``"euclidean"`` the W1
    cost, ``"l1"`` the Manhattan distance.
    """
    if metric not in _METRICS:
        raise ValueError(f"grid_cost: `metric` must be one of {_METRICS}, got {metric!r}")
    x = grid_points(shape, lower=lower, upper=upper, dtype=dtype, device=device)
    return {"sqeuclidean": squared_euclidean_cost, "euclidean": euclidean_cost,
            "l1": l1_cost}[metric](x, x)


def image_distribution(image, *, support_only: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """An image ``(H, W)`` of non-negative intensities as a distribution on ``[0, 1]^2``.

    Returns ``(weights, points)``: the intensities normalised to total mass 1 (C order) and
    the pixel centres (:func:`grid_points`). With ``support_only``, only pixels of positive
    intensity are kept (Sinkhorn-Newton-Sparse needs positive marginals).
    """
    image = torch.as_tensor(image)
    if not image.dtype.is_floating_point:
        image = image.double()
    if image.ndim != 2:
        raise ValueError(f"image_distribution: `image` must be 2-D (H, W), got {tuple(image.shape)}")
    if not bool(torch.isfinite(image).all()) or bool((image < 0).any()):
        raise ValueError("image_distribution: `image` must be finite and non-negative")
    total = image.sum()
    if not bool(total > 0):
        raise ValueError("image_distribution: `image` is all zero")
    weights = (image / total).reshape(-1)
    points = grid_points(tuple(image.shape), dtype=image.dtype, device=image.device)
    if support_only:
        keep = weights > 0
        weights, points = weights[keep], points[keep]
    return weights, points
