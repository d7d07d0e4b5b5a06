"""Seeded test problems for optimal transport: random point clouds, the random assignment
problem, discretised densities on grids, and small synthetic images (the stand-in for the
MNIST pairs of Tang et al. 2024: same 28 x 28 size, strokes and blobs on a zero background).

Every generator takes a ``seed`` and returns the same numbers for it on every platform
(NumPy's PCG64), as torch tensors in the requested dtype and device.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from pdekit.classical.ot.costs import grid_points

__all__ = [
    "gaussian_mixture_density",
    "random_assignment",
    "random_point_clouds",
    "synthetic_image",
]


def _tensor(x: np.ndarray, dtype, device) -> torch.Tensor:
    return torch.as_tensor(x, dtype=dtype, device=device)


def random_point_clouds(
    n: int, m: int | None = None, *, dim: int = 2, seed: int = 0,
    dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(a, b, x, y)``: ``n`` and ``m`` points uniform in ``[0, 1]^dim``, uniform weights."""
    m = n if m is None else m
    rng = np.random.default_rng(seed)
    x, y = rng.random((n, dim)), rng.random((m, dim))
    a, b = np.full(n, 1.0 / n), np.full(m, 1.0 / m)
    return tuple(_tensor(v, dtype, device) for v in (a, b, x, y))


def random_assignment(
    n: int, *, seed: int = 0, dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(a, b, C)``: the random assignment problem of Tang et al. (2024), Section 6: costs
    i.i.d. uniform on ``[0, 1]``, uniform marginals ``1 / n``."""
    rng = np.random.default_rng(seed)
    C = rng.random((n, n))
    a = np.full(n, 1.0 / n)
    return _tensor(a, dtype, device), _tensor(a, dtype, device), _tensor(C, dtype, device)


def gaussian_mixture_density(
    shape: Sequence[int] | int, *, components: int = 3, seed: int = 0,
    dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu",
) -> torch.Tensor:
    """A positive density on the cell centres of a grid on ``[0, 1]^d`` (C order, flattened),
    a mixture of ``components`` Gaussians with random centres and widths, normalised to mass 1."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    rng = np.random.default_rng(seed)
    x = grid_points(shape).numpy()
    density = np.zeros(len(x))
    for _ in range(components):
        centre = rng.uniform(0.2, 0.8, size=len(shape))
        width = rng.uniform(0.05, 0.15)
        weight = rng.uniform(0.5, 1.5)
        density += weight * np.exp(-((x - centre) ** 2).sum(1) / (2 * width**2))
    density += 1e-3 * density.max()  # strictly positive: every cell carries some mass
    return _tensor(density / density.sum(), dtype, device)


def synthetic_image(
    size: int = 28, *, seed: int = 0, dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """A ``size x size`` image in ``[0, 1]``: a random thick stroke (a bent line or a ring
    arc, as in handwritten digits) plus a blob, on a zero background (about 20-35% of the
    pixels are lit)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(0, 1, size), np.linspace(0, 1, size), indexing="ij")
    image = np.zeros((size, size))
    thickness = rng.uniform(0.05, 0.08)
    if rng.random() < 0.5:  # a ring arc
        centre = rng.uniform(0.35, 0.65, 2)
        radius = rng.uniform(0.18, 0.3)
        angle = np.arctan2(yy - centre[0], xx - centre[1])
        start = rng.uniform(-np.pi, np.pi)
        span = rng.uniform(1.2 * np.pi, 2 * np.pi)
        on_arc = np.mod(angle - start, 2 * np.pi) <= span
        dist = np.abs(np.hypot(yy - centre[0], xx - centre[1]) - radius)
        image = np.maximum(image, np.where(on_arc, np.exp(-(dist / thickness) ** 2), 0))
    else:  # a bent line: two segments
        pts = rng.uniform(0.15, 0.85, (3, 2))
        for p, q in ((pts[0], pts[1]), (pts[1], pts[2])):
            d = q - p
            t = np.clip(((yy - p[0]) * d[0] + (xx - p[1]) * d[1]) / (d @ d), 0, 1)
            dist = np.hypot(yy - p[0] - t * d[0], xx - p[1] - t * d[1])
            image = np.maximum(image, np.exp(-(dist / thickness) ** 2))
    centre = rng.uniform(0.25, 0.75, 2)
    blob = np.exp(-((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2) / (2 * 0.06**2))
    image = np.maximum(image, 0.8 * blob)
    image[image < 0.1] = 0.0
    return _tensor(image, dtype, device)
