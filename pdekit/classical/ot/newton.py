"""Sinkhorn-Newton-Sparse (SNS): Sinkhorn warm-up, then Newton steps on the Lyapunov potential
with a sparsified Hessian, solved by the shared conjugate gradients.

Tang, Shavlovsky, Rahmanian, Tardini, Thekumparampil, Xiao, Ying, "Accelerating Sinkhorn
algorithm with sparse Newton iterations", ICLR 2024 (arXiv 2401.12253), Algorithm 1.

With potentials ``z = (f, g)`` and plan ``P = exp((f_i + g_j - C_ij) / eps)``, the dual
(Lyapunov) potential ``L(f, g) = <a, f> + <b, g> - eps sum_ij P_ij`` (their eq. (3), with
``eta = 1 / eps`` and the constant shift absorbed into the potentials) is concave with

    grad L = (a - P 1, b - P^T 1),     -eps hess L = H = [[diag(P 1), P], [P^T, diag(P^T 1)]].

The Newton step ``z <- z + alpha eps H^{-1} grad L`` converges super-exponentially near the
solution. ``H`` costs ``O((n+m)^3)`` to factor, but ``P`` is approximately sparse (their
Section 5): keeping its ``rho`` largest entries (and the full diagonal blocks, which keeps the
truncated ``H`` symmetric positive semidefinite: ``x^T H x = sum_kept P_ij (x_i + y_j)^2 +
sum_i (dropped mass of row i) x_i^2 + ...``) gives a sparse SPD system solved by CG in
``O(n^2)`` per step, the cost of one Sinkhorn iteration.
"""

from __future__ import annotations

import math
import time
import warnings

import torch

from pdekit.classical.ot._inputs import OTProblem, check_eps, prepare_problem
from pdekit.classical.ot.result import OTResult, OTStatus
from pdekit.classical.ot.sinkhorn import (
    SERIAL_MAX_ENTRIES,
    SinkhornEngine,
    _History,
    finish_result,
    plan_from_potentials,
)
from pdekit.linalg import CSROperator, DiagonalOperator, SolveResult, cg
from pdekit.linalg._checks import check_maxiter, check_positive_int, check_tolerance
from pdekit.linalg._threads import serial_on_cpu

# line-search failures in a row (each followed by a longer Sinkhorn block) before giving up
_MAX_FAILURES = 8

__all__ = ["lyapunov", "newton_direction", "sinkhorn_newton_sparse", "sparsified_hessian"]


def lyapunov(problem: OTProblem, f: torch.Tensor, g: torch.Tensor, P: torch.Tensor, eps: float
             ) -> torch.Tensor:
    """``L(f, g) = <a, f> + <b, g> - eps sum P`` per member (the concave dual objective)."""
    return ((problem.a * f).sum(1) + (problem.b * g).sum(1)
            - eps * P.sum((1, 2)))


def _largest_entries(P: torch.Tensor, keep: int, max_dropped: float | None, max_keep: int):
    """The ``keep`` largest entries of each ``P_k`` (values, flat indices), with ``keep``
    doubled (up to ``max_keep``) until the mass left out is at most ``max_dropped`` of the
    total."""
    B = P.shape[0]
    flat = P.reshape(B, -1)
    total = flat.sum(1)
    keep = min(keep, flat.shape[1])
    while True:
        vals, idx = torch.topk(flat, keep, dim=1, sorted=False)
        if max_dropped is None or keep >= min(max_keep, flat.shape[1]):
            return vals, idx
        dropped = 1 - vals.sum(1) / total
        if bool((dropped <= max_dropped).all()):
            return vals, idx
        keep = min(2 * keep, max_keep, flat.shape[1])


def sparsified_hessian(P: torch.Tensor, keep: int, *, max_dropped: float | None = None,
                       max_keep: int | None = None) -> CSROperator:
    """The block-diagonal batch of sparsified Hessians ``H_k = [[diag(P_k 1), S_k],
    [S_k^T, diag(P_k^T 1)]]`` as one CSR operator of size ``B (n + m)``.

    ``S_k`` keeps the ``keep`` largest entries of ``P_k`` (Tang et al. 2024, Algorithm 1,
    ``Sparsify(P, rho)``), doubled up to ``max_keep`` while more than ``max_dropped`` of the
    mass is left out; the diagonals are the full marginals of ``P_k``, so each block is
    symmetric positive semidefinite (definite when anything was dropped).
    """
    B, n, m = P.shape
    N = n + m
    device = P.device
    vals, idx = _largest_entries(P, int(keep), max_dropped, int(max_keep or keep))
    offsets = (torch.arange(B, device=device) * N).unsqueeze(1)
    rows = idx // m + offsets
    cols = idx % m + n + offsets
    diag_idx = torch.arange(B * N, device=device)
    diag_val = torch.cat([P.sum(2), P.sum(1)], dim=1).reshape(-1)
    r = torch.cat([diag_idx, rows.reshape(-1), cols.reshape(-1)])
    c = torch.cat([diag_idx, cols.reshape(-1), rows.reshape(-1)])
    v = torch.cat([diag_val, vals.reshape(-1), vals.reshape(-1)])
    order = torch.argsort(r * (B * N) + c)
    r, c, v = r[order], c[order], v[order]
    crow = torch.zeros(B * N + 1, dtype=torch.long, device=device)
    crow[1:] = torch.cumsum(torch.bincount(r, minlength=B * N), 0)
    index_dtype = torch.int32 if v.numel() < 2**31 else torch.int64
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        matrix = torch.sparse_csr_tensor(crow.to(index_dtype), c.to(index_dtype), v,
                                         size=(B * N, B * N), check_invariants=False)
    return CSROperator(matrix, symmetric=True, positive_definite=True)


def newton_direction(
    P: torch.Tensor,
    grad_f: torch.Tensor,
    grad_g: torch.Tensor,
    eps: float,
    *,
    keep: int,
    rtol: float,
    maxiter: int | None = None,
    max_dropped: float | None = None,
    max_keep: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, SolveResult, CSROperator]:
    """The sparse Newton direction ``eps H^{-1} grad L`` for a batch of plans ``P (B, n, m)``.

    Solves ``H x = (grad_f, grad_g)`` with :func:`pdekit.linalg.cg` (Jacobi-preconditioned,
    relative tolerance ``rtol``) on the sparsified Hessian :func:`sparsified_hessian`
    (all members as one block-diagonal system). Returns ``(d_f, d_g, cg_result, H)`` with
    ``(d_f, d_g) = eps x``.
    """
    B, n, m = P.shape
    H = sparsified_hessian(P, keep, max_dropped=max_dropped, max_keep=max_keep)
    rhs = torch.cat([grad_f, grad_g], dim=1).reshape(-1)
    diag = H.diagonal()
    M = DiagonalOperator(1.0 / diag.clamp_min(torch.finfo(P.dtype).tiny), positive_definite=True)
    with serial_on_cpu(P.device):
        res = cg(H, rhs, rtol=rtol, M=M, maxiter=maxiter)
    x = res.x.reshape(B, n + m) * eps
    return x[:, :n], x[:, n:], res, H


def sinkhorn_newton_sparse(
    a,
    b,
    C,
    eps: float,
    *,
    tol: float = 1e-9,
    maxiter: int = 100,
    warmup: int = 20,
    warmup_tol: float | None = None,
    keep_per_row: float = 15.0,
    max_dropped: float | None = 1e-6,
    max_keep_per_row: float = 500.0,
    cg_maxiter: int | None = None,
    check_every: int = 10,
    max_backtracks: int = 30,
    return_plan: bool = True,
) -> OTResult:
    """Entropic OT by Sinkhorn-Newton-Sparse (Tang et al. 2024, arXiv 2401.12253, Algorithm 1).

    Same problem and conventions as :func:`~pdekit.classical.ot.sinkhorn` (``eps`` is POT's
    ``reg``; ``plan = exp((f_i + g_j - C_ij) / eps)``). Stage 1: up to ``warmup`` Sinkhorn
    iterations (stopping early at ``warmup_tol``). Stage 2: Newton steps on the Lyapunov
    potential with the Hessian sparsified to the ``ceil(keep_per_row * n)`` largest plan
    entries plus its diagonal, the Newton system solved inexactly by the shared CG
    (relative tolerance ``min(0.1, sqrt(violation))``), and a backtracking line search
    guarded by the marginal violation (near machine precision the change of ``L`` is
    below rounding, so a step is accepted only if it also reduces the violation).

    Parameters
    ----------
    a, b, C, eps
        As for :func:`~pdekit.classical.ot.sinkhorn`; ``a`` and ``b`` must be > 0.
    tol : float
        Stop when the L1 marginal violation is ``<= tol`` for every member.
    maxiter : int
        Newton-step limit.
    warmup : int
        Sinkhorn iterations before the Newton stage (paper: 20; 700 for hard cases).
    warmup_tol : float, optional
        Stop the warm-up early once the marginal violation is below this.
    keep_per_row : float
        Sparsity of the Hessian: ``ceil(keep_per_row * n)`` plan entries kept (paper's
        ``lambda n^2`` with ``lambda = keep_per_row / n``; paper: 2, or 15 for hard cases;
        15 converged fastest on every problem measured here, see the benchmarks page).
    max_dropped : float or None
        Adaptive sparsity: while the entries left out hold more than this fraction of the
        plan's mass, the number kept is doubled (up to ``max_keep_per_row * n``). Plans
        spread over many entries per row (point clouds at small ``eps``) need it; None keeps
        exactly ``keep_per_row * n`` as in the paper.
    max_keep_per_row : float
        Cap of the adaptive sparsity.

    Other Parameters
    ----------------
    cg_maxiter : int, optional
        CG iteration limit per Newton step (default ``10 (n + m)``).
    check_every : int
        Warm-up convergence checks every this many Sinkhorn iterations.
    max_backtracks : int
        Step halvings before the line search gives up; it then runs a block of Sinkhorn
        iterations (``check_every``, doubled at each failure in a row) and tries Newton
        again; nine failures in a row end the solve with ``LINE_SEARCH_FAILED``.
    return_plan : bool
        Keep the plan in the result.

    Returns
    -------
    OTResult
        As :func:`sinkhorn`; ``iterations`` counts Sinkhorn iterations plus Newton steps;
        ``newton_iterations`` and ``cg_iterations`` count the Newton stage's work.
    """
    fn = "sinkhorn_newton_sparse"
    start = time.perf_counter()
    problem = prepare_problem(fn, a, b, C, allow_zero_mass=False)
    eps = check_eps(fn, eps)
    tol = check_tolerance(fn, "tol", tol)
    maxiter = check_maxiter(fn, maxiter, 100)
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 1:
        raise ValueError(f"{fn}: `warmup` must be a positive integer, got {warmup!r}")
    if warmup_tol is not None:
        warmup_tol = check_tolerance(fn, "warmup_tol", warmup_tol)
    check_every = check_positive_int(fn, "check_every", check_every)
    max_backtracks = check_positive_int(fn, "max_backtracks", max_backtracks)
    if not (math.isfinite(float(keep_per_row)) and float(keep_per_row) > 0):
        raise ValueError(f"{fn}: `keep_per_row` must be > 0, got {keep_per_row!r}")
    n, m = problem.a.shape[1], problem.b.shape[1]
    keep = math.ceil(float(keep_per_row) * n)
    if max_dropped is not None:
        max_dropped = check_tolerance(fn, "max_dropped", max_dropped)
    max_keep = max(keep, math.ceil(float(max_keep_per_row) * n))
    if cg_maxiter is not None:
        cg_maxiter = check_positive_int(fn, "cg_maxiter", cg_maxiter)
    with serial_on_cpu(problem.device, problem.batch * n * m <= SERIAL_MAX_ENTRIES):
        return _solve(problem, eps, start=start, tol=tol, maxiter=maxiter, warmup=warmup,
                      warmup_tol=warmup_tol, keep=keep, max_dropped=max_dropped,
                      max_keep=max_keep, cg_maxiter=cg_maxiter,
                      check_every=check_every, max_backtracks=max_backtracks,
                      return_plan=return_plan)


def _solve(problem: OTProblem, eps: float, *, start: float, tol: float, maxiter: int,
           warmup: int, warmup_tol: float | None, keep: int, max_dropped: float | None,
           max_keep: int, cg_maxiter: int | None,
           check_every: int, max_backtracks: int, return_plan: bool) -> OTResult:
    """The two stages of :func:`sinkhorn_newton_sparse` on validated input."""
    engine = SinkhornEngine(problem, eps)
    history = _History(start)
    batch = problem.batch
    done = torch.zeros(batch, dtype=torch.bool)
    member_iterations = torch.zeros(batch, dtype=torch.long)
    status, info = OTStatus.MAXITER, ""

    def record(error: torch.Tensor, iterations: int) -> torch.Tensor:
        error = history.add(error, iterations)
        passed = (error <= tol) & ~done
        member_iterations[passed] = iterations
        done.logical_or_(error <= tol)
        return error

    # -- stage 1: Sinkhorn warm-up with early stopping -------------------------------------
    iterations = 0
    try:
        error = record(engine.start(), 1)
        iterations = 1
        early = tol if warmup_tol is None else max(tol, warmup_tol)
        while iterations < warmup and not bool((error <= early).all()):
            block = min(check_every, warmup - iterations)
            error = record(engine.run_block(block), iterations + block)
            iterations += block
    except FloatingPointError as err:
        f, g = engine.potentials()
        return finish_result(problem, engine.plan(), f, g, status=OTStatus.BREAKDOWN,
                             iterations=iterations, history=history,
                             member_iterations=member_iterations, converged=done, tol=tol,
                             return_plan=return_plan, info=f"{err} in the warm-up")

    # -- stage 2: sparse Newton ------------------------------------------------------------
    f, g = engine.potentials()
    P = plan_from_potentials(f, g, problem.C, eps, out=engine.K)
    trial = torch.empty_like(P)
    row, col = P.sum(2), P.sum(1)
    value = lyapunov(problem, f, g, P, eps)
    error = (row - problem.a).abs().sum(1) + (col - problem.b).abs().sum(1)
    finfo = torch.finfo(problem.dtype)
    newton_steps = cg_total = 0
    failures = 0
    while not bool(done.all()) and newton_steps < maxiter:
        active = (error.cpu() > tol).to(P.device)
        grad_f, grad_g = problem.a - row, problem.b - col
        rtol = min(0.1, math.sqrt(float(error.max())))
        d_f, d_g, res, _ = newton_direction(P, grad_f, grad_g, eps, keep=keep, rtol=rtol,
                                            maxiter=cg_maxiter, max_dropped=max_dropped,
                                            max_keep=max_keep)
        cg_total += res.iterations
        slope = (grad_f * d_f).sum(1) + (grad_g * d_g).sum(1)  # > 0: an ascent direction
        alpha = torch.where(active, 1.0, 0.0).to(P.dtype)
        pending = active.clone()
        for _ in range(max_backtracks):
            f_t = f + alpha.unsqueeze(1) * d_f
            g_t = g + alpha.unsqueeze(1) * d_g
            plan_from_potentials(f_t, g_t, problem.C, eps, out=trial)
            row_t, col_t = trial.sum(2), trial.sum(1)
            value_t = lyapunov(problem, f_t, g_t, trial, eps)
            error_t = (row_t - problem.a).abs().sum(1) + (col_t - problem.b).abs().sum(1)
            # round-off in L: terms of size |<a, f>| + |<b, g>| + eps * mass
            slack = 64 * finfo.eps * ((problem.a * f).sum(1).abs() + (problem.b * g).sum(1).abs()
                                      + eps * row.sum(1))
            # a measurable Armijo increase of L; or, where the change of L is within
            # rounding (near convergence), a decrease of the marginal violation
            gain = value_t - value
            armijo = (gain >= 1e-4 * alpha * slope) & (gain > slack)
            level = (gain.abs() <= slack) & (error_t < error)
            accept = pending & (armijo | level) & torch.isfinite(error_t)
            if bool(accept.any()):
                sel = accept.unsqueeze(1)
                f = torch.where(sel, f_t, f)
                g = torch.where(sel, g_t, g)
                P[accept] = trial[accept]
                row = torch.where(sel, row_t, row)
                col = torch.where(sel, col_t, col)
                value = torch.where(accept, value_t, value)
                error = torch.where(accept, error_t, error)
                pending &= ~accept
            if not bool(pending.any()):
                break
            alpha = torch.where(pending, alpha / 2, torch.zeros_like(alpha))
        newton_steps += 1
        iterations += 1
        if bool(pending.any()):
            # no acceptable step: a block of Sinkhorn iterations, then Newton again
            failures += 1
            if failures > _MAX_FAILURES:
                status = OTStatus.LINE_SEARCH_FAILED
                info = (f"after {newton_steps} Newton steps, violation "
                        f"{float(error.max()):.3e} > tol {tol:.1e}")
                record(error, iterations)
                break
            engine.set_potentials(f, g)
            block = check_every * 2 ** (failures - 1)  # longer each time: 10, 20, 40, ...
            try:
                for _ in range(2 ** (failures - 1)):
                    engine.run_block(check_every)
            except FloatingPointError:
                pass  # rolled back: keep the current potentials
            iterations += block
            f, g = engine.potentials()
            P = plan_from_potentials(f, g, problem.C, eps, out=engine.K)
            row, col = P.sum(2), P.sum(1)
            value = lyapunov(problem, f, g, P, eps)
            error = (row - problem.a).abs().sum(1) + (col - problem.b).abs().sum(1)
        else:
            failures = 0
        record(error, iterations)
    if bool(done.all()):
        status, info = OTStatus.CONVERGED, ""
    return finish_result(problem, P, f, g, status=status, iterations=iterations, history=history,
                         member_iterations=member_iterations, converged=done, tol=tol,
                         return_plan=return_plan, info=info, newton_iterations=newton_steps,
                         cg_iterations=cg_total)
