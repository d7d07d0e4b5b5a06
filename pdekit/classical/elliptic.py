"""A checked solve of ``A u = f`` for the stencil operators of elliptic problems.

Every dataset sample goes through :func:`solve_elliptic`: it picks the solver (multigrid-
preconditioned CG for stencils), handles singular pure-Neumann systems (the right-hand side
is projected onto the range, the solution normalised to zero mean on each floating region),
records the solver statistics, and raises :class:`SolveError` when the solve did not
converge, so no unconverged sample is ever stored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.ndimage
import torch

from pdekit.linalg import LinearOperator, StencilOperator, aslinearoperator, cg, ichol0, multigrid

__all__ = ["EllipticSolution", "SolveError", "floating_regions", "solve_elliptic"]

_METHODS = ("multigrid", "ichol0", "cg")


class SolveError(RuntimeError):
    """A reference solve did not reach its tolerance (the message says why)."""


@dataclass
class EllipticSolution:
    """Solution of a reference solve and its statistics.

    Attributes
    ----------
    u : torch.Tensor
        Solution, shaped like ``f``.
    iterations : int
        Solver iterations.
    relative_residual : float
        ``||f_proj - A u|| / ||f_proj||`` (true residual, float64; ``f_proj`` is ``f``
        projected onto the range for singular systems).
    projected : bool
        Whether ``f`` had to be projected (a singular pure-Neumann system).
    """

    u: torch.Tensor
    iterations: int
    relative_residual: float
    projected: bool = False


def floating_regions(A: StencilOperator) -> np.ndarray | None:
    """Label the connected fluid regions that touch no Dirichlet face (where the operator
    is singular: constants are in its null space). Returns an int array of the grid shape
    (0: not floating) or None when there are none."""
    if A.positive_definite:
        return None
    fluid = np.ones(A.grid_shape, bool) if A.solid is None else ~A.solid.cpu().numpy()
    labels, _ = scipy.ndimage.label(fluid)
    dirichlet = np.zeros(A.grid_shape, bool)
    for d, (lo, hi) in enumerate(A.bc):
        index = [slice(None)] * A.ndim
        if lo == "dirichlet":
            index[d] = slice(0, 1)
            dirichlet[tuple(index)] = True
        if hi == "dirichlet":
            index[d] = slice(-1, None)
            dirichlet[tuple(index)] = True
    anchored = np.unique(labels[dirichlet & fluid])
    floating = np.where(np.isin(labels, anchored) | (labels == 0), 0, labels)
    return floating if floating.any() else None


def _project_out_constants(v: torch.Tensor, regions: np.ndarray) -> torch.Tensor:
    """Subtract, on each floating region, the mean of ``v`` over that region."""
    labels = torch.as_tensor(regions, device=v.device).reshape(-1)
    flat = v.reshape(-1).clone()
    count = int(labels.max()) + 1
    sums = torch.zeros(count, dtype=v.dtype, device=v.device).index_add_(0, labels, flat)
    sizes = torch.bincount(labels, minlength=count).to(v.dtype)
    means = sums / sizes.clamp_min(1)
    means[0] = 0
    return (flat - means[labels]).reshape(v.shape)


def solve_elliptic(
    A: LinearOperator,
    f: torch.Tensor,
    *,
    rtol: float = 1e-10,
    method: str = "multigrid",
    maxiter: int | None = None,
) -> EllipticSolution:
    """Solve ``A u = f`` and check the result.

    Parameters
    ----------
    A : StencilOperator or LinearOperator
        Symmetric positive (semi-)definite operator.
    f : torch.Tensor
        Right-hand side (zero on solid cells).
    rtol : float
        Relative tolerance of the true residual.
    method : {"multigrid", "ichol0", "cg"}
        Preconditioner of CG (multigrid needs a stencil operator).
    maxiter : int, optional
        Iteration limit of CG.

    Raises
    ------
    SolveError
        The solve did not converge (status and message of the solver).
    """
    fn = "solve_elliptic"
    if method not in _METHODS:
        raise ValueError(f"{fn}: `method` must be one of {_METHODS}, got {method!r}")
    A = aslinearoperator(A)
    regions = floating_regions(A) if isinstance(A, StencilOperator) else None
    projected = regions is not None
    if projected:
        f = _project_out_constants(f, regions)
    if method == "multigrid":
        if not isinstance(A, StencilOperator):
            raise ValueError(f"{fn}: method='multigrid' needs a StencilOperator")
        M = multigrid(A)
    elif method == "ichol0":
        M = ichol0(A)
    else:
        M = None
    result = cg(A, f, rtol=rtol, M=M, maxiter=maxiter)
    if not result.status.ok:
        raise SolveError(f"{fn}: the reference solve failed: {result.message}")
    u = result.x
    if projected:
        u = _project_out_constants(u, regions)
    f64 = f.double()
    f_norm = float(torch.linalg.vector_norm(f64))
    residual = float(torch.linalg.vector_norm(f64 - (A @ u).double())) / (f_norm or 1.0)
    if residual > 10 * rtol:
        raise SolveError(
            f"{fn}: the true relative residual {residual:.3e} exceeds 10 x rtol = {10 * rtol:.1e}"
        )
    return EllipticSolution(u=u, iterations=result.iterations, relative_residual=residual,
                            projected=projected)
