"""Entropic optimal transport by Sinkhorn's matrix scaling, batched, stable for small ``eps``.

Cuturi (2013), "Sinkhorn distances: lightspeed computation of optimal transport", NeurIPS:
the plan ``P = diag(u) K diag(v)`` with ``K = exp(-C / eps)`` and the alternating updates
``u = a / (K v)``, ``v = b / (K^T u)``. Written with potentials ``f = eps log u``,
``g = eps log v`` this is exact alternating maximisation of the concave dual (Lyapunov)
potential ``L(f, g) = <a, f> + <b, g> - eps sum_ij exp((f_i + g_j - C_ij) / eps)``
(Tang et al. 2024, arXiv 2401.12253, eq. (3)), whose gradient is the marginal violation.

Small ``eps`` overflows ``K`` in floating point. Two remedies are combined here:

* the log domain (Peyre & Cuturi, *Computational Optimal Transport*, 2019, Remark 4.23):
  ``f_i = eps log a_i - eps LSE_j((g_j - C_ij) / eps)``; exact but 5-8 passes over the
  ``n x m`` matrix per half-step (``exp`` dominates);
* absorption (Schmitzer 2019, "Stabilized sparse scaling algorithms for entropy regularized
  transport problems", SIAM J. Sci. Comput. 41(3), Algorithm 2): the potentials found so far
  are absorbed into the kernel, ``K_ij = exp((f_i + g_j - C_ij) / eps)``, and the iteration
  continues on scalings ``u, v`` near 1 with two matrix-vector products per iteration (one
  read of ``K`` each, the bandwidth floor). When ``|log u|`` or ``|log v|`` grows large the
  scalings are absorbed again; when a block of iterations produces NaN/Inf/zero it is rolled
  back and redone in the log domain.

The default ``method="auto"`` starts with one log-domain iteration, then runs the absorbed
scaling iteration. ``method="log"`` runs the log domain throughout (the slow reference).
"""

from __future__ import annotations

import math
import time

import torch

from pdekit.classical.ot._inputs import OTProblem, check_eps, prepare_problem
from pdekit.classical.ot.result import OTResult, OTStatus
from pdekit.linalg._checks import check_maxiter, check_positive_int, check_tolerance
from pdekit.linalg._threads import serial_on_cpu

__all__ = ["SinkhornEngine", "finish_result", "plan_from_potentials", "sinkhorn"]

# Below this many kernel entries (2 MB in float64) a Sinkhorn iteration is a few microsecond
# kernels: a second thread gains nothing and costs a synchronisation per kernel.
SERIAL_MAX_ENTRIES = 1 << 18

_METHODS = ("auto", "log")


def exp_floor(dtype: torch.dtype) -> float:
    """An exponent below which ``exp`` is negligible (``exp(x) <= 1e6 * tiny``) in ``dtype``.

    Clamping arguments to it before ``exp`` avoids the slow underflow path of vectorised
    ``exp`` (5x on x86 CPUs for arguments below about -708 in float64) at no accuracy cost.
    """
    return math.log(torch.finfo(dtype).tiny) + 14.0


def plan_from_potentials(
    f: torch.Tensor,
    g: torch.Tensor,
    C: torch.Tensor,
    eps: float,
    out: torch.Tensor | None = None,
    *,
    floor: bool = False,
) -> torch.Tensor:
    """``P_ij = exp((f_i + g_j - C_ij) / eps)`` for ``f (B, n)``, ``g (B, m)``, ``C (B|1, n, m)``.

    Written into ``out`` (``(B, n, m)``) when given, without temporaries. With ``floor``,
    exponents are clamped at :func:`exp_floor` (entries below ``1e6 * tiny`` come out at
    that size instead of smaller or zero): for kernels, where it is 5x faster.
    """
    if out is None:
        out = torch.empty(f.shape[0], f.shape[1], g.shape[1], dtype=f.dtype, device=f.device)
    torch.add(f.unsqueeze(2), g.unsqueeze(1), out=out)
    out.sub_(C).div_(eps)
    if floor:
        out.clamp_(min=exp_floor(out.dtype))
    return out.exp_()


def _l1_error(marginal: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (marginal - target).abs().sum(1)


class SinkhornEngine:
    """Sinkhorn iterations on a batch of problems, in fixed buffers.

    State: absorbed potentials ``f0 (B, n)``, ``g0 (B, m)``; the kernel
    ``K = exp((f0 + g0 - C) / eps)`` (``(B, n, m)``); scalings ``u``, ``v``; and ``Kv = K v``,
    ``KTu = K^T u`` from the last iteration. The potentials are ``f = f0 + eps log u``,
    ``g = g0 + eps log v``. An iteration updates ``u`` then ``v`` (rows, then columns), so
    after it the column marginals are exact up to rounding.

    Used by :func:`sinkhorn` and as the warm-up of
    :func:`~pdekit.classical.ot.sinkhorn_newton_sparse`.
    """

    def __init__(self, problem: OTProblem, eps: float, *, method: str = "auto",
                 f0: torch.Tensor | None = None, g0: torch.Tensor | None = None) -> None:
        self.problem = problem
        a, b, C = problem.a, problem.b, problem.C
        self.a, self.b, self.C = a, b, C
        self.eps = eps
        self.method = method
        B, n, m = problem.batch, a.shape[1], b.shape[1]
        dtype, device = problem.dtype, problem.device
        self.log_a, self.log_b = a.log(), b.log()
        self.zero_a = (a == 0) if bool((a == 0).any()) else None
        self.zero_b = (b == 0) if bool((b == 0).any()) else None
        self.K = torch.empty(B, n, m, dtype=dtype, device=device)  # kernel, or log-domain work
        self.f0 = torch.zeros(B, n, dtype=dtype, device=device) if f0 is None else f0.clone()
        self.g0 = torch.zeros(B, m, dtype=dtype, device=device) if g0 is None else g0.clone()
        self.u = torch.ones(B, n, dtype=dtype, device=device)
        self.v = torch.ones(B, m, dtype=dtype, device=device)
        self.Kv = torch.empty(B, n, dtype=dtype, device=device)
        self.KTu = torch.empty(B, m, dtype=dtype, device=device)
        self.row_marginal = torch.empty(B, n, dtype=dtype, device=device)
        self.col_marginal = torch.empty(B, m, dtype=dtype, device=device)
        # absorb when a scaling leaves [exp(-tau), exp(tau)]: products u_i v_j stay within
        # exp(2 tau), far from overflow, and kernel entries lost to underflow stay negligible
        self.tau = -math.log(torch.finfo(dtype).tiny) / 8
        self.kernel_fresh = False  # whether K holds exp((f0 + g0 - C) / eps)
        self.log_domain_iterations = 0
        self.absorptions = 0

    # -- potentials and absorption -------------------------------------------------------
    def potentials(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The current ``(f, g)`` (new tensors)."""
        return self.f0 + self.eps * self.u.log(), self.g0 + self.eps * self.v.log()

    def set_potentials(self, f: torch.Tensor, g: torch.Tensor) -> None:
        """Set ``f0 = f``, ``g0 = g``, scalings 1, and rebuild the kernel."""
        self.f0.copy_(f)
        self.g0.copy_(g)
        self.u.fill_(1)
        self.v.fill_(1)
        self._rebuild_kernel()

    def set_eps(self, eps: float) -> None:
        """Change the regularisation, keeping the potentials (epsilon scaling)."""
        f, g = self.potentials()
        self.eps = eps
        self.set_potentials(f, g)

    def _rebuild_kernel(self) -> None:
        plan_from_potentials(self.f0, self.g0, self.C, self.eps, out=self.K, floor=True)
        self.kernel_fresh = True
        self._matvec(self.v, self.Kv)
        self.absorptions += 1

    def absorb(self) -> None:
        """Move ``eps log u``, ``eps log v`` into the potentials and rebuild the kernel."""
        f, g = self.potentials()
        self.set_potentials(f, g)

    # -- the two kernels -----------------------------------------------------------------
    def _matvec(self, v: torch.Tensor, out: torch.Tensor) -> None:
        if self.K.shape[0] == 1:
            torch.mv(self.K[0], v[0], out=out[0])
        else:
            torch.bmm(self.K, v.unsqueeze(2), out=out.unsqueeze(2))

    def _rmatvec(self, u: torch.Tensor, out: torch.Tensor) -> None:
        if self.K.shape[0] == 1:
            torch.mv(self.K[0].T, u[0], out=out[0])
        else:
            torch.bmm(self.K.transpose(1, 2), u.unsqueeze(2), out=out.unsqueeze(2))

    def _scaling_iterations(self, count: int) -> None:
        u, v, Kv, KTu = self.u, self.v, self.Kv, self.KTu
        for _ in range(count):
            torch.div(self.a, Kv, out=u)
            if self.zero_a is not None:
                u.masked_fill_(self.zero_a, 0)
            self._rmatvec(u, KTu)
            torch.div(self.b, KTu, out=v)
            if self.zero_b is not None:
                v.masked_fill_(self.zero_b, 0)
            self._matvec(v, Kv)
        torch.mul(u, Kv, out=self.row_marginal)
        torch.mul(v, KTu, out=self.col_marginal)

    def _lse(self, potential: torch.Tensor, dim: int) -> torch.Tensor:
        """``LSE((potential - C) / eps)`` reducing over ``dim`` (2: over j, 1: over i)."""
        W = self.K
        torch.sub(potential.unsqueeze(3 - dim), self.C, out=W)
        W.div_(self.eps)
        peak = W.amax(dim=dim, keepdim=True)
        peak.masked_fill_(~torch.isfinite(peak), 0)  # an all -inf slice: its LSE is -inf
        W.sub_(peak).clamp_(min=exp_floor(W.dtype)).exp_()
        return W.sum(dim=dim).log_().add_(peak.squeeze(dim))

    def _log_iterations(self, count: int) -> None:
        """``count`` log-domain iterations from the current potentials; the result is kept
        in ``f0``, ``g0`` (scalings 1) and the kernel is left stale."""
        eps = self.eps
        f, g = self.potentials()
        self.u.fill_(1)
        self.v.fill_(1)
        self.kernel_fresh = False
        lse_row = self._lse(g, 2)
        for _ in range(count):
            torch.sub(self.log_a, lse_row, out=f).mul_(eps)
            lse_col = self._lse(f, 1)
            torch.sub(self.log_b, lse_col, out=g).mul_(eps)
            lse_row = self._lse(g, 2)
        self.f0.copy_(f)
        self.g0.copy_(g)
        torch.exp(f / eps + lse_row, out=self.row_marginal)
        torch.exp(g / eps + lse_col, out=self.col_marginal)
        self.log_domain_iterations += count

    # -- one block -----------------------------------------------------------------------
    def _healthy(self) -> bool:
        ok = torch.isfinite(self.u).all() & torch.isfinite(self.v).all()
        ok &= torch.isfinite(self.row_marginal).all() & torch.isfinite(self.col_marginal).all()
        return bool(ok)

    def run_block(self, count: int) -> torch.Tensor:
        """Run ``count`` iterations; return the L1 marginal violation per member ``(B,)``.

        On NaN/Inf the block is rolled back and redone in the log domain. Raises
        ``FloatingPointError`` when even the log domain breaks down (state rolled back).
        """
        if self.method == "log":
            self._log_iterations(count)
            if not self._healthy():
                raise FloatingPointError("log-domain Sinkhorn produced NaN/Inf")
            return self.marginal_error()
        if not self.kernel_fresh:
            self._rebuild_kernel()
        saved = [t.clone() for t in (self.f0, self.g0, self.u, self.v)]
        self._scaling_iterations(count)
        if not self._healthy():
            for t, s in zip((self.f0, self.g0, self.u, self.v), saved, strict=True):
                t.copy_(s)
            self._log_iterations(count)
            if not self._healthy():
                for t, s in zip((self.f0, self.g0, self.u, self.v), saved, strict=True):
                    t.copy_(s)
                raise FloatingPointError("Sinkhorn produced NaN/Inf even in the log domain")
            self._rebuild_kernel()
        else:
            big = torch.maximum(self.u.log().abs().nan_to_num(0, 0, 0).amax(),
                                self.v.log().abs().nan_to_num(0, 0, 0).amax())
            if bool(big > self.tau):
                self.absorb()
        return self.marginal_error()

    def start(self) -> torch.Tensor:
        """One log-domain iteration from the current potentials (so that the kernel is well
        scaled whatever the cost), then the kernel; returns the marginal violation."""
        self._log_iterations(1)
        if not self._healthy():
            raise FloatingPointError("log-domain Sinkhorn produced NaN/Inf")
        if self.method != "log":
            self._rebuild_kernel()
        return self.marginal_error()

    def marginal_error(self) -> torch.Tensor:
        """``||P 1 - a||_1 + ||P^T 1 - b||_1`` per member, from the last iteration's products."""
        return _l1_error(self.row_marginal, self.a) + _l1_error(self.col_marginal, self.b)

    def plan(self) -> torch.Tensor:
        """The plan of the current potentials, written into the kernel buffer (which it then
        owns: the engine cannot iterate further)."""
        if self.kernel_fresh:
            P = self.K.mul_(self.u.unsqueeze(2)).mul_(self.v.unsqueeze(1))
        else:
            f, g = self.potentials()
            P = plan_from_potentials(f, g, self.C, self.eps, out=self.K)
        self.kernel_fresh = False
        return P


class _History:
    """Marginal violation, iteration count and time at each convergence check."""

    def __init__(self, start: float) -> None:
        self.start = start
        self.errors: list[torch.Tensor] = []
        self.iterations: list[int] = []
        self.seconds: list[float] = []

    def add(self, error: torch.Tensor, iteration: int) -> torch.Tensor:
        error = error.detach().to("cpu", torch.float64)
        self.errors.append(error)
        self.iterations.append(iteration)
        self.seconds.append(time.perf_counter() - self.start)
        return error

    def tensors(self, batch: int):
        errors = torch.stack(self.errors) if self.errors else torch.empty(0, batch, dtype=torch.float64)
        return (errors, torch.tensor(self.iterations, dtype=torch.long),
                torch.tensor(self.seconds, dtype=torch.float64))


def finish_result(
    problem: OTProblem,
    P: torch.Tensor,
    f: torch.Tensor,
    g: torch.Tensor,
    *,
    status: OTStatus,
    iterations: int,
    history: _History,
    member_iterations: torch.Tensor,
    converged: torch.Tensor,
    tol: float,
    return_plan: bool,
    info: str = "",
    newton_iterations: int = 0,
    cg_iterations: int = 0,
) -> OTResult:
    """Measure the cost and the final marginal violation on the plan ``P`` and build the
    result (unbatched when the inputs were)."""
    C = problem.C
    cost = torch.linalg.vecdot(P.flatten(1), C.flatten(1))
    error = _l1_error(P.sum(2), problem.a) + _l1_error(P.sum(1), problem.b)
    error_cpu = error.detach().to("cpu", torch.float64)
    member_iterations = member_iterations.clone()
    member_iterations[~converged] = iterations
    errors, its, secs = history.tensors(problem.batch)
    if not info and not status.ok:
        info = f"marginal violation {float(error_cpu.max()):.3e} > tol {tol:.1e}"
    u = problem.unbatch
    return OTResult(
        f=u(f), g=u(g), plan=u(P) if return_plan else None, cost=u(cost), iterations=iterations,
        marginal_error=u(error), status=status,
        marginal_error_history=errors if problem.batch_shape else errors[:, 0],
        history_iterations=its, history_seconds=secs, wall_time=time.perf_counter() - history.start,
        converged=u(converged), member_iterations=u(member_iterations),
        newton_iterations=newton_iterations, cg_iterations=cg_iterations, info=info,
    )


def _eps_schedule(eps: float, C: torch.Tensor, factor: float | None) -> list[float]:
    """Decreasing regularisations ending at ``eps``: ``eps / factor^k`` from the cost's range."""
    if factor is None:
        return [eps]
    scale = float(C.amax() - C.amin())
    schedule = [eps]
    while schedule[-1] < scale:
        schedule.append(schedule[-1] / factor)
    return schedule[::-1]


def sinkhorn(
    a,
    b,
    C,
    eps: float,
    *,
    tol: float = 1e-9,
    maxiter: int | None = None,
    check_every: int = 10,
    method: str = "auto",
    eps_scaling: float | None = None,
    init: tuple[torch.Tensor, torch.Tensor] | None = None,
    return_plan: bool = True,
) -> OTResult:
    """Entropic optimal transport by Sinkhorn iterations, stable for small ``eps``.

    Solves ``min_P <P, C> + eps sum_ij P_ij (log P_ij - 1)`` over plans with row sums ``a``
    and column sums ``b`` (POT's ``ot.sinkhorn(a, b, C, reg=eps)``); the solution is
    ``P = exp((f_i + g_j - C_ij) / eps)``. Iterates from ``f = g = 0`` (POT's start) until
    the L1 marginal violation ``||P 1 - a||_1 + ||P^T 1 - b||_1 <= tol``.

    Parameters
    ----------
    a : tensor or array, ``(n,)`` or ``(B, n)``
        Source marginal(s), ``>= 0``.
    b : tensor or array, ``(m,)`` or ``(B, m)``
        Target marginal(s), ``>= 0``, with the same total mass as ``a``.
    C : tensor or array, ``(n, m)`` or ``(B, n, m)``
        Cost matrix (shared by the batch when 2-D). Its dtype and device are the outputs'.
    eps : float
        Entropic regularisation (POT's ``reg``), ``> 0``. Scale it with the cost: with
        costs of order 1, ``eps = 1e-3`` is sharp and slow to converge.
    tol : float
        Stop when the L1 marginal violation (absolute, in units of mass) is ``<= tol`` for
        every batch member.
    maxiter : int, optional
        Iteration limit (default 10,000).
    check_every : int
        Measure the marginal violation every this many iterations (each check is a
        device-to-host sync on accelerators).

    Other Parameters
    ----------------
    method : {"auto", "log"}
        ``"auto"``: absorbed scaling iteration with log-domain start and fallback (fast);
        ``"log"``: log-domain updates throughout (about 10-20x slower on the CPU).
    eps_scaling : float in (0, 1), optional
        Warm start by epsilon scaling: one block of ``check_every`` iterations at each of
        ``eps / eps_scaling^k`` from the cost's range down to ``eps``.
    init : (f, g), optional
        Initial potentials (a warm start), shaped like the outputs.
    return_plan : bool
        Keep the plan in the result (``n x m`` memory); the cost is computed either way.

    Returns
    -------
    OTResult
        ``f``, ``g``, ``plan``, ``cost`` (``<plan, C>``), ``iterations``, ``marginal_error``
        (measured on the returned plan), ``status``, and the history of the marginal violation
        at each check (with iteration counts and seconds).

    Raises
    ------
    ValueError
        Shape mismatch, NaN/Inf in ``C``, ``a`` or ``b``, negative entries, marginals of
        different total mass, ``eps <= 0``.
    """
    fn = "sinkhorn"
    start = time.perf_counter()
    problem = prepare_problem(fn, a, b, C)
    eps = check_eps(fn, eps)
    tol = check_tolerance(fn, "tol", tol)
    maxiter = check_maxiter(fn, maxiter, 10_000)
    check_every = check_positive_int(fn, "check_every", check_every)
    if method not in _METHODS:
        raise ValueError(f"{fn}: `method` must be one of {_METHODS}, got {method!r}")
    if eps_scaling is not None and not (0 < float(eps_scaling) < 1):
        raise ValueError(f"{fn}: `eps_scaling` must lie in (0, 1), got {eps_scaling!r}")
    schedule = _eps_schedule(eps, problem.C, eps_scaling)
    f0 = g0 = None
    if init is not None:
        f0, g0 = _check_init(fn, init, problem)
    engine = SinkhornEngine(problem, schedule[0], method=method, f0=f0, g0=g0)
    with serial_on_cpu(problem.device, engine.K.numel() <= SERIAL_MAX_ENTRIES):
        return run_sinkhorn(engine, problem, schedule, tol=tol, maxiter=maxiter,
                            check_every=check_every, start=start, return_plan=return_plan)


def _check_init(fn: str, init, problem: OTProblem) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        f0, g0 = init
    except (TypeError, ValueError):
        raise TypeError(f"{fn}: `init` must be a pair (f, g) of potentials") from None
    out = []
    for name, x, like in (("f", f0, problem.a), ("g", g0, problem.b)):
        x = torch.as_tensor(x, dtype=problem.dtype, device=problem.device)
        if x.shape[-1] != like.shape[1] or x.ndim > 2:
            raise ValueError(f"{fn}: `init` {name} has shape {tuple(x.shape)}, expected "
                             f"({like.shape[1]},) or (B, {like.shape[1]})")
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{fn}: `init` {name} must be finite")
        out.append(x.reshape(-1, like.shape[1]).expand_as(like).clone())
    return out[0], out[1]


def run_sinkhorn(
    engine: SinkhornEngine,
    problem: OTProblem,
    schedule: list[float],
    *,
    tol: float,
    maxiter: int,
    check_every: int,
    start: float,
    return_plan: bool,
    history: _History | None = None,
    stop_error: float | None = None,
) -> OTResult:
    """Drive ``engine`` through the epsilon ``schedule`` and to ``tol``; build the result.

    ``stop_error`` (used by the SNS warm-up) stops as soon as every member's violation is
    below it, reporting ``MAXITER`` unless ``tol`` was met.
    """
    history = history or _History(start)
    batch = problem.batch
    member_iterations = torch.zeros(batch, dtype=torch.long)
    done = torch.zeros(batch, dtype=torch.bool)
    status = OTStatus.MAXITER
    info = ""
    iterations = 0
    finfo = torch.finfo(problem.dtype)
    mass = float(problem.a.sum(1).max())
    best = float("inf")
    since_best = 0
    try:
        error = history.add(engine.start(), 1)
        iterations = 1
        for stage_eps in schedule[1:]:  # epsilon scaling: one block per intermediate eps
            engine.set_eps(stage_eps)
            error = history.add(engine.run_block(check_every), iterations + check_every)
            iterations += check_every
        stop = tol if stop_error is None else max(tol, stop_error)
        while True:
            passed = error <= tol
            member_iterations[passed & ~done] = iterations
            done |= passed
            if bool(done.all()):
                status = OTStatus.CONVERGED
                break
            if bool((error <= stop).all()) or iterations >= maxiter:
                break
            worst = float(error[~done].max())
            if worst < best * 0.999:
                best, since_best = worst, 0
            else:
                since_best += 1
                # rounding floor: no progress for 20 checks at a violation within reach of it
                if since_best >= 20 and worst <= 1e4 * finfo.eps * mass:
                    status = OTStatus.STAGNATED
                    info = f"marginal violation stuck at {worst:.3e} > tol {tol:.1e}"
                    break
            block = min(check_every, maxiter - iterations)
            error = history.add(engine.run_block(block), iterations + block)
            iterations += block
    except FloatingPointError as err:
        status = OTStatus.BREAKDOWN
        info = f"{err} at iteration {iterations}"
    f, g = engine.potentials()
    P = engine.plan()
    return finish_result(problem, P, f, g, status=status, iterations=iterations, history=history,
                         member_iterations=member_iterations, converged=done, tol=tol,
                         return_plan=return_plan, info=info)
