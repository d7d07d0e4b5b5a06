"""Iteration counts of SOR and SSOR-PCG solves, batched where the systems are independent.

The bandit's feedback is an iteration count, and SOR iterations are deterministic given
``(A_t, b_t, omega)``, so costs can be computed once and looked up. Both counts come from
the shared kernels: :func:`pdekit.linalg.sor` (natural ordering, the SOR of the paper) and
:func:`pdekit.linalg.cg` with ``M = pdekit.linalg.ssor(A, omega)``.

Many small SOR systems with *different* matrices are solved together as one
block-diagonal system: in natural ordering the lower triangle of a block-diagonal matrix
is block-diagonal, so each sweep updates every block exactly as a separate sweep would.
A callback records the first sweep at which each block's own residual meets its tolerance,
and blocks that have converged are dropped between rounds (restarting SOR from the current
iterate continues the same iteration: SOR's state is ``x`` alone).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse
import torch

from pdekit.linalg import CSROperator, SolveStatus, aslinearoperator, cg, sor, ssor
from pdekit.linalg.csr import is_symmetric_sparse

__all__ = ["sor_iterations", "ssor_pcg_iterations"]


def _block_diagonal(matrices: Sequence, members: np.ndarray) -> scipy.sparse.csr_matrix:
    return scipy.sparse.block_diag([matrices[i] for i in members], format="csr")


def sor_iterations(
    matrices: Sequence[scipy.sparse.spmatrix],
    rhs: np.ndarray,
    omega: float,
    *,
    rtol: float = 1e-8,
    maxiter: int = 10_000,
    batch: int = 512,
    round_sweeps: int = 32,
) -> np.ndarray:
    """Sweeps natural-ordering SOR needs on each system ``matrices[j] x = rhs[j]`` from 0.

    Parameters
    ----------
    matrices : sequence of scipy sparse matrices
        ``B`` square matrices of one size ``n`` with nonzero diagonals.
    rhs : array of shape ``(B, n)``
        Right-hand sides.
    omega : float
        Relaxation factor in (0, 2).
    rtol : float
        Stop system ``j`` when ``||b_j - A_j x|| <= rtol ||b_j||`` (the paper's 1e-8).
    maxiter : int
        Cap on the sweeps (the paper's 10,000); a system that does not converge costs it.

    Other Parameters
    ----------------
    batch : int
        Systems solved together in one block-diagonal solve.
    round_sweeps : int
        Least number of sweeps between removals of converged systems (rounds grow to a
        quarter of the sweeps done, so rebuilding the block-diagonal matrix stays cheap).

    Returns
    -------
    numpy.ndarray of int64, shape ``(B,)``
        Per system, the first sweep count at which its residual met the tolerance.
    """
    fn = "sor_iterations"
    rhs = np.asarray(rhs, dtype=np.float64)
    if len(matrices) == 0:
        raise ValueError(f"{fn}: `matrices` is empty; need at least one system")
    if rhs.ndim != 2 or rhs.shape[0] != len(matrices):
        raise ValueError(
            f"{fn}: `rhs` must have shape ({len(matrices)}, n), got {rhs.shape}"
        )
    n = rhs.shape[1]
    for j, matrix in enumerate(matrices):
        if matrix.shape != (n, n):
            raise ValueError(f"{fn}: `matrices[{j}]` has shape {matrix.shape}, expected {(n, n)}")
    if not (0.0 < float(omega) < 2.0):
        raise ValueError(f"{fn}: `omega` must lie in (0, 2), got {omega}")
    matrices = [scipy.sparse.csr_matrix(m, dtype=np.float64) for m in matrices]
    iterations = np.full(len(matrices), -1, dtype=np.int64)
    b_norm = np.linalg.norm(rhs, axis=1)
    iterations[b_norm == 0] = 0
    for start in range(0, len(matrices), batch):
        members = np.arange(start, min(start + batch, len(matrices)))
        members = members[iterations[members] < 0]
        x = np.zeros((members.size, n))
        done = 0
        while members.size and done < maxiter:
            sweeps = min(max(round_sweeps, done // 4), maxiter - done)
            matrix = _block_diagonal(matrices, members)
            A = CSROperator.from_scipy(matrix, dtype=torch.float64)
            b_np = rhs[members].reshape(-1)
            tol = rtol * b_norm[members]
            first = np.full(members.size, -1, dtype=np.int64)
            count = [done]

            def record(xk, matrix=matrix, b_np=b_np, tol=tol, first=first, count=count):
                # each block's own residual (a check, not a solve: a plain SciPy product)
                count[0] += 1
                r = np.linalg.norm((b_np - matrix @ xk.numpy()).reshape(-1, n), axis=1)
                first[(first < 0) & (r <= tol)] = count[0]

            result = sor(A, torch.from_numpy(b_np.copy()), float(omega),
                         torch.from_numpy(x.reshape(-1).copy()), rtol=0.0,
                         atol=float(tol.min()), maxiter=sweeps, ordering="natural",
                         callback=record)
            if result.status is SolveStatus.DIVERGED or result.status is SolveStatus.BREAKDOWN:
                raise RuntimeError(f"{fn}: SOR failed ({result.message}); is every matrix SPD?")
            iterations[members[first >= 0]] = first[first >= 0]
            done += result.iterations
            keep = first < 0
            x = result.x.numpy().reshape(-1, n)[keep]
            members = members[keep]
            if result.status is SolveStatus.CONVERGED and members.size:
                # the joint criterion held for everyone: the rest converged on this sweep
                iterations[members] = done
                members = members[:0]
        iterations[members] = maxiter
    return iterations


def ssor_pcg_iterations(
    A,
    rhs: torch.Tensor,
    omega: float,
    x0: torch.Tensor | None = None,
    *,
    rtol: float = 1e-8,
    maxiter: int = 10_000,
) -> np.ndarray:
    """Iterations SSOR-preconditioned CG needs on ``A x = rhs[j]`` for each ``j``.

    One batched :func:`pdekit.linalg.cg` call with ``M = ssor(A, omega)``: the batch shares
    ``A`` and ``omega`` and each member stops on its own.

    Parameters
    ----------
    A : LinearOperator or matrix-like
        Symmetric positive definite.
    rhs : torch.Tensor
        ``(B, *vector_shape)`` right-hand sides.
    omega : float
        SSOR relaxation factor in (0, 2).
    x0 : torch.Tensor, optional
        Initial guesses shaped like ``rhs`` (warm starts).

    Returns
    -------
    numpy.ndarray of int64, shape ``(B,)``

    Raises
    ------
    ValueError
        ``A`` not symmetric, not positive definite (non-positive diagonal, or negative
        curvature met by CG), or ``omega`` outside (0, 2).
    """
    fn = "ssor_pcg_iterations"
    if not (0.0 < float(omega) < 2.0):
        raise ValueError(f"{fn}: `omega` must lie in (0, 2), got {omega}")
    if scipy.sparse.issparse(A) and not is_symmetric_sparse(A):
        raise ValueError(f"{fn}: `A` is not symmetric; SSOR-PCG needs a symmetric positive "
                         "definite matrix")
    A = aslinearoperator(A)
    if A.symmetric is False:
        raise ValueError(f"{fn}: `A` is tagged symmetric=False; SSOR-PCG needs an SPD matrix")
    try:
        M = ssor(A, float(omega))
    except ValueError as err:
        raise ValueError(f"{fn}: `A` is not positive definite ({err})") from None
    result = cg(A, rhs, x0, rtol=rtol, maxiter=maxiter, M=M)
    if result.status is SolveStatus.NOT_POSITIVE_DEFINITE:
        raise ValueError(f"{fn}: `A` is not positive definite: {result.message}")
    return result.member_iterations.reshape(-1).numpy().astype(np.int64)
