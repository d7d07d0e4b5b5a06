"""Sparsity-constrained optimal transport: at most ``k`` nonzeros per column of the plan.

Liu, Puigcerver, Blondel, "Sparsity-constrained optimal transport", ICLR 2023 (arXiv
2209.15466). The primal ``min_T <T, C> + (gamma / 2) ||T||^2`` over plans with marginals
``a``, ``b`` whose columns have at most ``k`` nonzeros is nonconvex; its dual (their
Section 4, eq. (8)) is smooth and concave:

    D(f, g) = <a, f> + <b, g> - sum_j Omega_k^*(f + g_j 1 - C[:, j]),
    Omega_k^*(s) = (1 / (2 gamma)) sum_{i in top_k(s)} [s_i]_+^2,

with gradient ``(a - T 1, b - T^T 1)`` (the marginal violation) at the plan
``T[:, j] = [top_k(f + g_j - C[:, j])]_+ / gamma`` (``k`` largest entries of the column,
others zero). It is maximised here by L-BFGS (SciPy's ``L-BFGS-B``, objective and gradient
evaluated in torch on the inputs' device, in float64 whatever the inputs' dtype: a float32
objective stalls the line search). ``k = 1`` gives unregularised OT when an optimal
plan with one nonzero per column exists (e.g. assignment problems); ``k >= n`` gives
quadratically regularised OT.
"""

from __future__ import annotations

import time

import numpy as np
import scipy.optimize
import torch

from pdekit.classical.ot._inputs import check_eps, prepare_problem
from pdekit.classical.ot.result import OTResult, OTStatus
from pdekit.classical.ot.sinkhorn import _History, finish_result
from pdekit.linalg._checks import check_maxiter, check_positive_int, check_tolerance

__all__ = ["sparse_plan", "sparsity_constrained_dual", "sparsity_constrained_ot"]


def sparse_plan(f: torch.Tensor, g: torch.Tensor, C: torch.Tensor, gamma: float, k: int
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """The plan ``T = grad Omega_k^*`` of potentials ``f (n,)``, ``g (m,)`` and
    ``sum_j Omega_k^*``: for each column the ``k`` largest of ``f + g_j - C[:, j]``, their
    positive parts over ``gamma``, all other entries zero. Returns ``(T, penalty)``."""
    X = f.unsqueeze(1) + g.unsqueeze(0) - C
    vals, idx = torch.topk(X, k, dim=0)
    vals = vals.clamp_min_(0)
    T = torch.zeros_like(X).scatter_(0, idx, vals / gamma)
    return T, vals.square().sum() / (2 * gamma)


def sparsity_constrained_dual(f, g, a, b, C, gamma: float, k: int):
    """``(D(f, g), T)``: the dual objective of Liu et al. (2023), eq. (8), and its plan."""
    T, penalty = sparse_plan(f, g, C, gamma, k)
    return (a * f).sum() + (b * g).sum() - penalty, T


def sparsity_constrained_ot(
    a,
    b,
    C,
    gamma: float,
    k: int,
    *,
    tol: float = 1e-7,
    maxiter: int | None = None,
    return_plan: bool = True,
) -> OTResult:
    """Optimal transport with at most ``k`` nonzeros per column of the plan (Liu, Puigcerver,
    Blondel, ICLR 2023), by L-BFGS on the smooth dual.

    Parameters
    ----------
    a : tensor or array, ``(n,)`` or ``(B, n)``
        Source marginal(s), ``>= 0``.
    b : tensor or array, ``(m,)`` or ``(B, m)``
        Target marginal(s), with the same mass as ``a``.
    C : tensor or array, ``(n, m)`` or ``(B, n, m)``
        Cost matrix; its dtype and device are the outputs'.
    gamma : float
        Weight of the squared-L2 regularisation ``(gamma / 2) ||T||^2`` (POT's ``reg``),
        ``> 0``. Smaller is closer to unregularised OT and harder for L-BFGS.
    k : int
        Maximum number of nonzeros per column (POT's ``max_nz``), ``1 <= k``.
    tol : float
        Target L1 marginal violation (the dual gradient's L1 norm); L-BFGS stops there or
        when it can make no more progress.
    maxiter : int, optional
        L-BFGS iteration limit per problem (default 10,000).
    return_plan : bool
        Keep the (dense, column-sparse) plan in the result.

    Returns
    -------
    OTResult
        ``f``, ``g`` (dual potentials), ``plan`` (at most ``k`` nonzeros per column),
        ``cost = <plan, C>``, ``iterations`` (L-BFGS iterations), ``marginal_error``,
        ``status``, the violation's history (one entry per objective evaluation).
    """
    fn = "sparsity_constrained_ot"
    start = time.perf_counter()
    problem = prepare_problem(fn, a, b, C)
    gamma = check_eps(fn, gamma, "gamma")
    k = check_positive_int(fn, "k", k)
    tol = check_tolerance(fn, "tol", tol)
    maxiter = check_maxiter(fn, maxiter, 10_000)
    n, m = problem.a.shape[1], problem.b.shape[1]
    k = min(k, n)
    history = _History(start)
    fs, gs, plans, converged, member_its = [], [], [], [], []
    total_its = 0
    traces: list[list[tuple[float, float]]] = []  # per member: (violation, seconds) per evaluation
    work = torch.float64  # SciPy's L-BFGS works in float64: so does the objective
    for i in range(problem.batch):
        a_i, b_i = problem.a[i].to(work), problem.b[i].to(work)
        C_i = problem.C[min(i, problem.C.shape[0] - 1)].to(work)
        errors: list[tuple[float, float]] = []
        traces.append(errors)

        def objective(z: np.ndarray, a_i=a_i, b_i=b_i, C_i=C_i, errors=errors):
            zt = torch.as_tensor(z, dtype=work, device=problem.device)
            value, T = sparsity_constrained_dual(zt[:n], zt[n:], a_i, b_i, C_i, gamma, k)
            grad = torch.cat([a_i - T.sum(1), b_i - T.sum(0)])
            errors.append((float(grad.abs().sum()), time.perf_counter() - start))
            # minimise -D
            return -float(value), -grad.cpu().numpy()

        z0 = np.zeros(n + m)
        res = scipy.optimize.minimize(
            objective, z0, jac=True, method="L-BFGS-B",
            options={"maxiter": maxiter, "maxfun": 2 * maxiter, "ftol": 1e-16,
                     "gtol": tol / (n + m), "maxcor": 20},
        )
        z = torch.as_tensor(res.x, dtype=work, device=problem.device)
        f, g = z[:n], z[n:]
        T, _ = sparse_plan(f, g, C_i, gamma, k)
        violation = float((T.sum(1) - a_i).abs().sum() + (T.sum(0) - b_i).abs().sum())
        fs.append(f.to(problem.dtype))
        gs.append(g.to(problem.dtype))
        plans.append(T.to(problem.dtype))
        converged.append(violation <= tol)
        member_its.append(int(res.nit))
        total_its = max(total_its, int(res.nit))
    # one history entry per objective evaluation; members that needed fewer keep their last
    for j in range(max(len(t) for t in traces)):
        row = [t[min(j, len(t) - 1)] for t in traces]
        history.errors.append(torch.tensor([e for e, _ in row], dtype=torch.float64))
        history.iterations.append(j + 1)
        history.seconds.append(max(s for _, s in row))
    done = torch.tensor(converged)
    status = OTStatus.CONVERGED if bool(done.all()) else OTStatus.MAXITER
    info = ""
    if not status.ok:
        status = OTStatus.STAGNATED if total_its < maxiter else OTStatus.MAXITER
        info = ("L-BFGS stopped before the marginal violation met `tol`; for small `gamma` the "
                "dual is stiff: raise `gamma`, loosen `tol`, or raise `maxiter`")
    return finish_result(
        problem, torch.stack(plans), torch.stack(fs), torch.stack(gs), status=status,
        iterations=total_its, history=history, member_iterations=torch.tensor(member_its),
        converged=done, tol=tol, return_plan=return_plan, info=info,
    )
