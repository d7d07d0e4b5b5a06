"""Finite-difference Poisson problems ``-Laplacian u = f`` in 2D and 3D.

The discretisation is :class:`~pdekit.linalg.StencilOperator`'s: Dirichlet boundaries one
spacing away from the first unknown (vertex-centred), Neumann faces half a spacing away
(cell-centred), no flux across faces of solid cells (fluid-pressure style). On the domain
``[0, L]^d`` this fixes the spacing per axis (:func:`grid_spacing`) and the coordinates of the
unknowns (:func:`grid_coordinates`). The scheme is second-order accurate
(:func:`manufactured_solution` checks it).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.ndimage
import scipy.sparse
import torch

from pdekit.classical.elliptic import EllipticSolution, solve_elliptic
from pdekit.linalg import StencilOperator
from pdekit.linalg.stencil import _normalize_bc

__all__ = [
    "assemble_matrix",
    "dirichlet_anchor_axis",
    "grid_coordinates",
    "grid_spacing",
    "manufactured_solution",
    "operator",
    "random_obstacles",
    "solve",
]


def _shape_and_bc(fn: str, shape, bc):
    shape = tuple(int(n) for n in shape)
    if len(shape) not in (1, 2, 3) or any(n < 1 for n in shape):
        raise ValueError(f"{fn}: `shape` must have 1 to 3 positive entries, got {shape}")
    return shape, _normalize_bc(bc, len(shape))


def _offsets(lo: str, hi: str) -> tuple[float, float]:
    """Distance from the boundary to the first / after the last unknown, in spacings."""
    return (1.0 if lo == "dirichlet" else 0.5), (1.0 if hi == "dirichlet" else 0.5)


def grid_spacing(shape: Sequence[int], bc="dirichlet", length: float = 1.0) -> tuple[float, ...]:
    """Spacing per axis that puts ``shape`` unknowns on ``[0, length]`` with ``bc``.

    Dirichlet-Dirichlet: ``h = L / (n + 1)``; Neumann-Neumann: ``L / n``; mixed: ``L / (n + 1/2)``.
    """
    shape, bc = _shape_and_bc("grid_spacing", shape, bc)
    out = []
    for n, (lo, hi) in zip(shape, bc, strict=True):
        a, b = _offsets(lo, hi)
        out.append(length / (n - 1 + a + b))
    return tuple(out)


def grid_coordinates(shape: Sequence[int], bc="dirichlet", length: float = 1.0) -> list[np.ndarray]:
    """Coordinates of the unknowns along each axis (see :func:`grid_spacing`)."""
    shape, bc = _shape_and_bc("grid_coordinates", shape, bc)
    out = []
    for n, (lo, hi), h in zip(shape, bc, grid_spacing(shape, bc, length), strict=True):
        out.append((np.arange(n) + _offsets(lo, hi)[0]) * h)
    return out


def operator(
    shape: Sequence[int],
    *,
    bc="dirichlet",
    solid=None,
    coefficients=None,
    length: float = 1.0,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> StencilOperator:
    """The discrete ``-div(a grad .)`` on ``[0, length]^d`` as a matrix-free operator.

    Parameters
    ----------
    shape : tuple of int
        Unknowns per axis.
    bc, solid, coefficients
        As for :class:`~pdekit.linalg.StencilOperator` (default ``a = 1``: the Laplacian).
    length : float
        Side of the domain.
    """
    shape, _ = _shape_and_bc("poisson.operator", shape, bc)
    return StencilOperator(
        shape, coefficients, spacing=grid_spacing(shape, bc, length), bc=bc, solid=solid,
        dtype=dtype, device=device,
    )


def assemble_matrix(shape: Sequence[int], **kwargs) -> scipy.sparse.csr_matrix:
    """The same operator as :func:`operator` (same arguments), as a SciPy CSR matrix."""
    return operator(shape, **kwargs).to_scipy()


def manufactured_solution(
    shape: Sequence[int], bc="dirichlet", length: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """An exact solution ``u`` of ``-Laplacian u = f`` meeting ``bc``, and its ``f``.

    Per axis a trigonometric factor that vanishes on Dirichlet faces and has zero slope on
    Neumann faces (``sin(pi x/L)``, ``cos(pi x/L)``, ``sin(pi x/2L)``, ``cos(pi x/2L)``);
    ``u`` is their product and ``f = sum_d k_d^2 u``. Returns both on the grid of unknowns.
    """
    shape, bc = _shape_and_bc("manufactured_solution", shape, bc)
    coords = grid_coordinates(shape, bc, length)
    factors, wavenumbers = [], []
    for x, (lo, hi) in zip(coords, bc, strict=True):
        if (lo, hi) == ("dirichlet", "dirichlet"):
            k, factor = np.pi / length, np.sin(np.pi * x / length)
        elif (lo, hi) == ("neumann", "neumann"):
            k, factor = np.pi / length, np.cos(np.pi * x / length)
        elif (lo, hi) == ("dirichlet", "neumann"):
            k, factor = np.pi / (2 * length), np.sin(np.pi * x / (2 * length))
        else:
            k, factor = np.pi / (2 * length), np.cos(np.pi * x / (2 * length))
        factors.append(factor)
        wavenumbers.append(k)
    grids = np.meshgrid(*factors, indexing="ij")
    u = np.prod(grids, axis=0)
    f = sum(k * k for k in wavenumbers) * u
    return u, f


def dirichlet_anchor_axis(bc, ndim: int) -> int | None:
    """The first axis whose low face is Dirichlet (None if none is): obstacles drawn with
    ``random_obstacles(..., anchor_axis=...)`` keep their fluid connected to it, so the
    operator stays positive definite."""
    low = [b if isinstance(b, str) else b[0] for b in _normalize_bc(bc, ndim)]
    return next((d for d, kind in enumerate(low) if kind == "dirichlet"), None)


def random_obstacles(
    shape: Sequence[int],
    rng: np.random.Generator,
    *,
    fraction: float = 0.1,
    kinds: Sequence[str] = ("sphere", "box"),
    radius: tuple[float, float] = (0.03, 0.1),
    anchor_axis: int | None = 0,
) -> np.ndarray:
    """A random layout of solid spheres and axis-aligned boxes covering about ``fraction``
    of the grid.

    Parameters
    ----------
    shape : tuple of int
        Grid shape.
    rng : numpy.random.Generator
        Source of randomness.
    fraction : float
        Target solid fraction in [0, 0.9].
    kinds : sequence of {"sphere", "box"}
        Obstacle shapes to draw from.
    radius : (float, float)
        Range of radii (half side for boxes), as fractions of the smallest grid side.
    anchor_axis : int, optional
        Fluid pockets not connected to the low face of this axis are made solid (so a
        Dirichlet face there keeps the operator positive definite). None keeps all fluid.

    Returns
    -------
    numpy.ndarray
        Boolean mask, True on solid cells.
    """
    fn = "random_obstacles"
    shape, _ = _shape_and_bc(fn, shape, "dirichlet")
    if not 0 <= fraction <= 0.9:
        raise ValueError(f"{fn}: `fraction` must lie in [0, 0.9], got {fraction}")
    kinds = tuple(kinds)
    if not kinds or any(k not in ("sphere", "box") for k in kinds):
        raise ValueError(f"{fn}: `kinds` must be a non-empty subset of ('sphere', 'box'), got {kinds}")
    lo, hi = radius
    if not 0 < lo <= hi:
        raise ValueError(f"{fn}: `radius` must be (min, max) with 0 < min <= max, got {radius}")
    solid = np.zeros(shape, bool)
    grids = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij")
    for _ in range(10_000):
        if solid.mean() >= fraction:
            break
        centre = [rng.uniform(0, n) for n in shape]
        r = rng.uniform(lo, hi) * min(shape)
        kind = kinds[int(rng.integers(len(kinds)))]
        if kind == "sphere":
            solid |= sum((g - c) ** 2 for g, c in zip(grids, centre, strict=True)) <= r * r
        else:
            solid |= np.all([np.abs(g - c) <= r for g, c in zip(grids, centre, strict=True)], axis=0)
    if anchor_axis is not None:
        labels, _ = scipy.ndimage.label(~solid)
        face = tuple(slice(0, 1) if d == anchor_axis else slice(None) for d in range(len(shape)))
        keep = np.setdiff1d(np.unique(labels[face]), [0])
        solid = ~np.isin(labels, keep)
    return solid


def solve(
    A: StencilOperator, f, *, rtol: float = 1e-10, method: str = "multigrid"
) -> EllipticSolution:
    """Solve the Poisson system ``A u = f`` (checked; see
    :func:`~pdekit.classical.elliptic.solve_elliptic`). ``f`` may be a NumPy array."""
    f = torch.as_tensor(f, dtype=A.dtype, device=A.device)
    if A.solid is not None:
        f = f * (~A.solid)
    return solve_elliptic(A, f, rtol=rtol, method=method)
