"""Relaxation solvers: SOR (natural or red-black ordering), Gauss-Seidel and weighted Jacobi.

Successive over-relaxation (Young, 1950): with ``A = D + L + U``,
``(D / omega + L) x_{k+1} = b - (U + (1 - 1/omega) D) x_k``, i.e.
``x_{k+1} = x_k + (D / omega + L)^{-1} (b - A x_k)``. ``omega = 1`` is Gauss-Seidel.
Natural (lexicographic) ordering is sequential: one sparse triangular solve per sweep.
Red-black ordering updates all cells of one colour at once (stencils only, any device).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import scipy.sparse
import torch

from pdekit.linalg._checks import check_maxiter, check_positive_int, check_tolerance
from pdekit.linalg.cg import prepare_system
from pdekit.linalg.operator import LinearOperator, apply_into
from pdekit.linalg.result import SolveResult, SolveStatus
from pdekit.linalg.stencil import StencilOperator
from pdekit.linalg.triangular import SparseTriangular

__all__ = ["sor"]

_ORDERINGS = ("natural", "red-black", "jacobi")


class _Sweep:
    """One relaxation sweep on ``x`` for ``A x = b``, in place."""

    def __init__(self, A: LinearOperator, omega: float, ordering: str) -> None:
        self.A, self.omega, self.ordering = A, omega, ordering
        diag = A.diagonal()
        if not bool((diag != 0).all()):
            raise ValueError("sor: the diagonal of `A` has zeros; relaxation needs a nonzero diagonal")
        self.omega_over_diag = omega / diag
        if ordering == "natural":
            matrix = A.to_scipy().tocsr()
            lower = scipy.sparse.diags(matrix.diagonal() / omega) + scipy.sparse.tril(matrix, k=-1)
            self.triangle = SparseTriangular(lower, lower=True, dtype=A.dtype, device=A.device)

    def __call__(self, x: torch.Tensor, b: torch.Tensor, scratch: torch.Tensor) -> None:
        if self.ordering == "red-black":
            self.A.relax_red_black(x, b, self.omega)
            return
        r = torch.sub(b, apply_into(self.A, x, scratch), out=scratch)
        if self.ordering == "natural":
            x.add_(self.triangle.solve(r.reshape(r.shape[0], -1)).reshape(x.shape))
        else:
            x.addcmul_(r, self.omega_over_diag)


def sor(
    A,
    b: torch.Tensor,
    omega: float = 1.0,
    x0: torch.Tensor | None = None,
    *,
    rtol: float = 1e-5,
    atol: float = 0.0,
    maxiter: int | None = None,
    ordering: str | None = None,
    callback: Callable[[torch.Tensor], None] | None = None,
    check_every: int = 1,
) -> SolveResult:
    """Solve ``A x = b`` by successive over-relaxation.

    Parameters
    ----------
    A : LinearOperator or matrix-like
        Square operator with explicit entries (stencil, CSR, dense), nonzero diagonal.
        Converges for SPD ``A`` and ``0 < omega < 2`` (Ostrowski-Reich).
    b : torch.Tensor
        Right-hand side(s), optionally batched as in :func:`cg`.
    omega : float
        Relaxation factor in (0, 2); 1 gives Gauss-Seidel (for ``ordering="jacobi"``: the
        damping of weighted Jacobi).
    x0 : torch.Tensor, optional
        Initial guess (not modified); default zero.
    rtol, atol : float
        Stop when ``||b - A x|| <= max(rtol ||b||, atol)``.
    maxiter : int, optional
        Maximum number of sweeps, default ``10 * n``.
    ordering : {"natural", "red-black", "jacobi"}, optional
        Update order. Default: red-black for stencil operators, natural otherwise.
    callback : callable, optional
        ``callback(x)`` after each sweep.

    Other Parameters
    ----------------
    check_every : int
        Test convergence every this many sweeps (the residual is computed every sweep
        anyway; on GPUs each test is a host sync).

    Returns
    -------
    SolveResult
        ``iterations`` counts sweeps; ``residual_norms`` holds the sweeps at which
        convergence was checked (all of them with the default ``check_every=1``).
    """
    fn = "sor"
    start = time.perf_counter()
    A, b, x, batch_shape, flat = prepare_system(fn, A, b, x0)
    omega = float(omega)
    if not (0.0 < omega < 2.0):
        raise ValueError(f"{fn}: `omega` must lie in (0, 2), got {omega}")
    if ordering is None:
        ordering = "red-black" if isinstance(A, StencilOperator) else "natural"
    if ordering not in _ORDERINGS:
        raise ValueError(f"{fn}: `ordering` must be one of {_ORDERINGS}, got {ordering!r}")
    if ordering == "red-black" and not isinstance(A, StencilOperator):
        raise ValueError(
            f"{fn}: ordering='red-black' needs a StencilOperator (a grid to colour); "
            "use ordering='natural' for general matrices"
        )
    rtol = check_tolerance(fn, "rtol", rtol)
    atol = check_tolerance(fn, "atol", atol)
    maxiter = check_maxiter(fn, maxiter, 10 * A.n)
    check_every = check_positive_int(fn, "check_every", check_every)
    sweep = _Sweep(A, omega, ordering)

    batch = b.shape[0]
    x = torch.zeros_like(b) if x is None else x.clone()
    b_norm = torch.linalg.vector_norm(b.reshape(batch, -1), dim=1)
    tol = torch.clamp(rtol * b_norm, min=atol)
    r = torch.empty_like(b)
    scratch = torch.empty_like(b)
    active = torch.ones(batch, dtype=torch.bool, device=A.device)
    member_iterations = torch.zeros(batch, dtype=torch.long)
    history = []
    status, info, iterations = SolveStatus.MAXITER, "", 0
    r0_norm = None
    for k in range(maxiter + 1):
        iterations = k
        if k % check_every == 0 or k == maxiter:
            torch.sub(b, apply_into(A, x, scratch), out=r)
            r_norm = torch.linalg.vector_norm(r.reshape(batch, -1), dim=1)
            history.append(r_norm)
            if r0_norm is None:
                r0_norm = torch.where(r_norm > 0, r_norm, torch.ones_like(r_norm))
            if not bool(torch.isfinite(r_norm).all()):
                status, info = SolveStatus.BREAKDOWN, f"non-finite residual at sweep {k}"
                break
            if bool((r_norm > 1e6 * r0_norm).any()):
                status, info = SolveStatus.DIVERGED, f"residual grew 1e6-fold by sweep {k}"
                break
            done = active & (r_norm <= tol)
            member_iterations[done.cpu()] = k
            active = active & ~done
            if not bool(active.any()):
                status = SolveStatus.CONVERGED
                break
            all_active = bool(active.all())
        if k == maxiter:
            info = f"maxiter={maxiter}, residual {float(r_norm.max()):.3e} > tolerance"
            break
        if all_active:
            sweep(x, b, scratch)
        else:  # sweep only the members still running, so each stops where it converged
            index = torch.nonzero(active).squeeze(1)
            sub = x[index]
            sweep(sub, b[index], scratch[: len(index)])
            x[index] = sub
        if callback is not None:
            callback(A.merge_batch(x, batch_shape, flat))
    if A.device.type == "cuda":
        torch.cuda.synchronize(A.device)
    converged = (history[-1] <= tol).cpu()
    member_iterations[active.cpu()] = iterations
    return SolveResult(
        x=A.merge_batch(x, batch_shape, flat),
        status=status,
        iterations=iterations,
        residual_norms=torch.stack(history).cpu().reshape(len(history), *batch_shape),
        wall_time=time.perf_counter() - start,
        converged=converged.reshape(batch_shape),
        member_iterations=member_iterations.reshape(batch_shape),
        info=info,
    )
