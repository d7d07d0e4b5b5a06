"""Darcy flow ``-div(a grad u) = f`` on the unit square with ``u = 0`` on the boundary.

The standard benchmark of neural operators (Li et al., "Fourier Neural Operator for
Parametric PDEs", ICLR 2021; Lu et al. 2022; Wu et al. 2023): the coefficient is a Gaussian
random field ``N(0, (-Laplacian + tau^2)^(-alpha))`` (``alpha = 2``, ``tau = 3``) thresholded
to 12 where it is non-negative and 3 elsewhere, sampled on an ``s x s`` grid that includes the
boundary nodes; ``f = 1``; the 5-point finite-difference scheme with face coefficients by
averaging the two nodes, spacing ``1 / (s - 1)``; solved on a fine grid (``s = 421``) and
subsampled to coarser ones (every 5th node gives 85 x 85).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from pdekit.classical.elliptic import EllipticSolution, solve_elliptic
from pdekit.classical.grf import gaussian_random_field
from pdekit.linalg import StencilOperator

__all__ = ["darcy_coefficient", "darcy_operator", "solve_darcy", "subsample"]


def darcy_coefficient(
    size: int,
    rng: np.random.Generator,
    *,
    alpha: float = 2.0,
    tau: float = 3.0,
    values: Sequence[float] = (12.0, 3.0),
) -> np.ndarray:
    """A thresholded Gaussian random field on the ``size x size`` grid (boundary included):
    ``values[0]`` where the field is >= 0, ``values[1]`` elsewhere."""
    if int(size) < 3:
        raise ValueError(f"darcy_coefficient: `size` must be >= 3, got {size}")
    high, low = (float(v) for v in values)
    if not (high > 0 and low > 0):
        raise ValueError(f"darcy_coefficient: `values` must be positive, got {tuple(values)}")
    field = gaussian_random_field((int(size), int(size)), rng, alpha=alpha, tau=tau)
    return np.where(field >= 0, high, low)


def darcy_operator(
    a, *, dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu"
) -> StencilOperator:
    """The discrete ``-div(a grad .)`` on the interior nodes of the grid where ``a`` (``s x s``,
    boundary included) lives; spacing ``1 / (s - 1)``."""
    a = torch.as_tensor(np.asarray(a), dtype=dtype, device=device)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] < 3:
        raise ValueError(f"darcy_operator: `a` must be a square s x s grid with s >= 3, got {tuple(a.shape)}")
    s = a.shape[0]
    return StencilOperator((s - 2, s - 2), a, spacing=1.0 / (s - 1), bc="dirichlet",
                           dtype=dtype, device=device)


def solve_darcy(
    a,
    f: float | np.ndarray = 1.0,
    *,
    rtol: float = 1e-10,
    method: str = "multigrid",
    device: torch.device | str = "cpu",
) -> tuple[np.ndarray, EllipticSolution]:
    """Solve Darcy flow for the coefficient ``a`` on an ``s x s`` grid (boundary included).

    Parameters
    ----------
    a : array (s, s)
        Positive coefficient on all grid nodes.
    f : float or array (s - 2, s - 2)
        Forcing on the interior nodes (default 1, as in the benchmark).
    rtol : float
        Relative tolerance of the reference solve (checked).
    method : str
        Preconditioner (see :func:`~pdekit.classical.elliptic.solve_elliptic`).

    Returns
    -------
    u : numpy.ndarray (s, s)
        The solution on all nodes (zero on the boundary), float64.
    solution : EllipticSolution
        Solver statistics.
    """
    A = darcy_operator(a, device=device)
    rhs = torch.as_tensor(np.broadcast_to(np.asarray(f, dtype=np.float64), A.grid_shape).copy(),
                          device=device)
    solution = solve_elliptic(A, rhs, rtol=rtol, method=method)
    u = np.zeros(tuple(n + 2 for n in A.grid_shape))
    u[1:-1, 1:-1] = solution.u.cpu().numpy()
    return u, solution


def subsample(field: np.ndarray, factor: int) -> np.ndarray:
    """Every ``factor``-th node along each axis (``421 -> 85`` for ``factor = 5``); the grid
    size must satisfy ``(s - 1) % factor == 0`` so the boundary nodes are kept."""
    field = np.asarray(field)
    factor = int(factor)
    if factor < 1 or any((n - 1) % factor for n in field.shape[-2:]):
        raise ValueError(
            f"subsample: `factor` {factor} must divide s - 1 for the grid {field.shape[-2:]}"
        )
    return field[..., ::factor, ::factor]
