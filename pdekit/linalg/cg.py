"""Batched (preconditioned, optionally flexible) conjugate gradients.

Hestenes & Stiefel (1952); preconditioned form as in Saad, *Iterative Methods for Sparse
Linear Systems*, 2nd ed., Algorithm 9.1; flexible (Polak-Ribiere) variant after Notay (2000),
"Flexible conjugate gradients", SIAM J. Sci. Comput. 22(4), with
``beta_k = <z_{k+1}, r_{k+1} - r_k> / <z_k, r_k>``. A flexible step whose preconditioned
residual is not a descent direction (``<r, z> <= 0``, which a nonlinear preconditioner such as a
network can return) restarts along the residual itself (a steepest-descent step, ``beta = 0``).

The calling contract follows ``scipy.sparse.linalg.cg``. On GPUs the loop never waits for
the device between convergence checks: step lengths stay device tensors, and the host looks
at the residual only every ``check_every`` iterations.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from pdekit.linalg._checks import (
    as_tensor_like,
    check_finite,
    check_maxiter,
    check_positive_int,
    check_tolerance,
)
from pdekit.linalg._compile import cuda_compiled, graphs_enabled
from pdekit.linalg.operator import LinearOperator, apply_into, aslinearoperator
from pdekit.linalg.result import SolveResult, SolveStatus

__all__ = ["batched_dot", "cg", "prepare_preconditioner", "prepare_system"]


def batched_dot(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``<u_i, v_i>`` for each batch member of ``(batch, ...)`` tensors."""
    if torch.compiler.is_compiling():
        return (u * v).flatten(1).sum(1)
    batch = u.shape[0]
    return (u.reshape(batch, 1, -1) @ v.reshape(batch, -1, 1)).reshape(batch)


def _per_member(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.reshape(-1, *([1] * (like.ndim - 1)))


@cuda_compiled
def _update_solution(x, r, p, q, rho, active, first_breakdown, breakdown_is_nan, step, rr):
    """One CG step, in place, for the members whose step is valid: ``x += alpha p``,
    ``r -= alpha q``; ``rr`` receives ``<r, r>``. Tensors are flat ``(batch, n)``.

    The bookkeeping stays on the device (no host sync): a member whose ``p.Ap`` is not
    positive although ``rho`` is nonzero has broken down (``p.Ap <= 0``: not positive
    definite; NaN: breakdown) and is frozen (``active`` cleared), its first such iteration
    recorded. ``rho == 0`` means solved exactly, not a breakdown.
    """
    pq = batched_dot(p, q)
    ok = active & (pq > 0) & (rho > 0)
    alpha = torch.where(ok, rho / torch.where(ok, pq, torch.ones_like(pq)), torch.zeros_like(pq))
    a = alpha.unsqueeze(1)
    x.addcmul_(p, a)
    r.addcmul_(q, a, value=-1)
    broke = active & ~ok & (rho != 0)
    first_breakdown.copy_(torch.where(broke & (first_breakdown < 0), step, first_breakdown))
    breakdown_is_nan.copy_(breakdown_is_nan | (broke & ~torch.isfinite(pq)))
    active.copy_(active & (ok | (rho == 0)))
    rr.copy_(batched_dot(r, r))


@cuda_compiled
def _descent_guard(r, z, fell_back, fallbacks, counted):
    """In place, for flexible CG: where ``<r, z>`` is finite and ``<= 0`` although ``r != 0``
    (``z`` is no descent direction), ``z = r``; ``fell_back`` marks those members and
    ``fallbacks`` counts them where ``counted``. A NaN stays, to be reported as a breakdown."""
    rz = batched_dot(r, z)
    bad = (rz <= 0) & (batched_dot(r, r) > 0)
    z.copy_(torch.where(bad.unsqueeze(1), r, z))
    fell_back.copy_(bad)
    fallbacks.add_((bad & counted).long())


@cuda_compiled
def _update_direction(p, z, rho, rho_new, active):
    """In place: ``p = z + beta p`` with ``beta = rho_new / rho``, then ``rho = rho_new``."""
    beta = torch.where(active, rho_new / torch.where(rho > 0, rho, torch.ones_like(rho)),
                       torch.zeros_like(rho))
    p.mul_(beta.unsqueeze(1)).add_(z)
    rho.copy_(rho_new)


class _State:
    """CG state in fixed buffers (flat views ``(batch, n)`` for the vector updates), so a
    block of iterations can be captured in a CUDA graph and replayed."""

    def __init__(self, A, M, b, x, flexible, block):
        batch = b.shape[0]
        self.A, self.M, self.flexible = A, M, flexible
        self.b, self.x = b, x
        self.r = b - A._matvec(x) if bool(x.any()) else b.clone()
        self.q = torch.empty_like(b)
        self.z = None if M is None else torch.empty_like(b)
        self.r_old = torch.empty_like(b) if flexible else None
        # per member: did this step's z fall back to r, and how often it did
        self.fell_back = torch.zeros(batch, dtype=torch.bool, device=b.device)
        self.fallbacks = torch.zeros(batch, dtype=torch.long, device=b.device)
        self.active = torch.ones(batch, dtype=torch.bool, device=b.device)
        z = self.apply_M()
        self.rho = batched_dot(self.r, z)
        self.p = z.clone()
        self.rr = torch.empty_like(self.rho)
        self.rho_pr = torch.empty_like(self.rho)
        device = b.device
        self.first_breakdown = torch.full((batch,), -1, dtype=torch.long, device=device)
        self.breakdown_is_nan = torch.zeros(batch, dtype=torch.bool, device=device)
        self.step = torch.zeros((), dtype=torch.long, device=device)
        self.active.zero_()  # the caller activates the members still above tolerance
        self.history = torch.empty(block, batch, dtype=self.rho.dtype, device=device)

    def flat(self, t):
        return t.view(t.shape[0], -1)

    def apply_M(self) -> torch.Tensor:
        if self.M is None:
            return self.r
        shape = (-1, *self.M.vector_shape)
        out = apply_into(self.M, self.r.view(shape), self.z.view(shape)).view(self.r.shape)
        if self.flexible:
            if out.data_ptr() != self.z.data_ptr():
                self.z.copy_(out)
            _descent_guard(self.flat(self.r), self.flat(self.z), self.fell_back,
                           self.fallbacks, self.active)
            return self.z
        return out

    def run(self, iterations: int, callback=None) -> None:
        """Run ``iterations`` CG iterations; ``history[j]`` gets ``||r||`` after each."""
        f = self.flat
        for j in range(iterations):
            q = apply_into(self.A, self.p, self.q)
            if self.flexible:
                self.r_old.copy_(self.r)
            self.step.add_(1)
            _update_solution(f(self.x), f(self.r), f(self.p), f(q), self.rho, self.active,
                             self.first_breakdown, self.breakdown_is_nan, self.step, self.rr)
            z = self.apply_M()
            if self.M is None:
                rho_new = self.rr
            else:
                rho_new = batched_dot(self.r, z)
            if self.flexible:
                torch.sub(rho_new, batched_dot(z, self.r_old), out=self.rho_pr)
                # a steepest-descent step restarts the recursion: beta = 0
                self.rho_pr.masked_fill_(self.fell_back, 0)
                _update_direction(f(self.p), f(z), self.rho, self.rho_pr, self.active)
                self.rho.copy_(rho_new)
            else:
                _update_direction(f(self.p), f(z), self.rho, rho_new, self.active)
            torch.sqrt(self.rr, out=self.history[j])
            if callback is not None:
                callback(self.x)


class _BlockRunner:
    """Runs blocks of ``size`` iterations; on CUDA, replays a captured graph of one block.

    The first block runs eagerly (it also compiles the kernels); the second is captured
    once and replayed from then on. An operator or preconditioner that cannot be captured
    (for example one that syncs with the host) silently keeps the eager path.
    """

    def __init__(self, state: _State, size: int, use_graph: bool) -> None:
        self.state, self.size = state, size
        self.use_graph = use_graph
        self.graph = None
        self.blocks_run = 0

    def run(self, iterations: int, callback=None) -> None:
        st = self.state
        if callback is None and self.use_graph and iterations == self.size and self.blocks_run >= 1:
            if self.graph is None:
                self.graph = self._capture()
            if self.graph is not None:
                self.graph.replay()
                self.blocks_run += 1
                return
        st.run(iterations, callback)
        self.blocks_run += 1

    def _capture(self):
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                self.state.run(self.size)
        except Exception:  # not capturable: stay eager
            self.use_graph = False
            return None
        return graph


def prepare_system(fn: str, A, b, x0):
    """Validate ``A``, ``b``, ``x0`` and bring them to ``(batch, *vector_shape)`` form.

    Returns ``(A, b, x0_or_None, batch_shape, flat)``.
    """
    A = aslinearoperator(A)
    b = as_tensor_like(fn, "b", b, A.dtype, A.device)
    bb, batch_shape, flat = A.split_batch(b, "b", fn)
    check_finite(fn, "b", bb)
    xx = None
    if x0 is not None:
        x0 = as_tensor_like(fn, "x0", x0, A.dtype, A.device)
        if x0.shape != b.shape:
            raise ValueError(
                f"{fn}: `x0` has shape {tuple(x0.shape)} but `b` has shape {tuple(b.shape)}"
            )
        xx = x0.reshape(bb.shape)
        check_finite(fn, "x0", xx)
    return A, bb, xx, batch_shape, flat


def prepare_preconditioner(fn: str, A: LinearOperator, M) -> LinearOperator | None:
    """Validate a preconditioner ``M`` (an operator or callable approximating ``A^{-1}``).

    A preconditioner with a ``bind(A)`` method (e.g. a learned one, which serves any grid) is
    bound to ``A`` first."""
    if M is None:
        return None
    if hasattr(M, "bind") and callable(M.bind):
        M = M.bind(A)
    if callable(M) and not isinstance(M, LinearOperator):
        M = aslinearoperator(M, shape=A.shape, dtype=A.dtype, device=A.device)
    M = aslinearoperator(M)
    if M.shape != A.shape:
        raise ValueError(f"{fn}: `M` has shape {M.shape} but `A` has shape {A.shape}")
    if M.dtype != A.dtype or M.device != A.device:
        raise ValueError(
            f"{fn}: `M` is {M.dtype} on {M.device} but `A` is {A.dtype} on {A.device}; "
            "move one with `.to(device, dtype)`"
        )
    return M


def cg(
    A,
    b: torch.Tensor,
    x0: torch.Tensor | None = None,
    *,
    rtol: float = 1e-5,
    atol: float = 0.0,
    maxiter: int | None = None,
    M=None,
    callback: Callable[[torch.Tensor], None] | None = None,
    check_every: int | None = None,
    flexible: bool = False,
) -> SolveResult:
    """Solve ``A x = b`` for symmetric positive definite ``A`` by conjugate gradients.

    Parameters
    ----------
    A : LinearOperator or matrix-like
        Symmetric positive (semi-)definite operator; anything :func:`aslinearoperator`
        accepts. An operator tagged ``symmetric=False`` is refused.
    b : torch.Tensor
        Right-hand side(s): ``(n,)``, ``vector_shape`` (e.g. a grid), or either with leading
        batch dimensions. A batch is solved together; each member stops on its own.
    x0 : torch.Tensor, optional
        Initial guess shaped like ``b`` (never modified). Default zero.
    rtol, atol : float
        Stop when ``||b - A x||_2 <= max(rtol * ||b||_2, atol)`` (per batch member).
    maxiter : int, optional
        Iteration limit, default ``10 * n`` (as SciPy).
    M : LinearOperator or callable, optional
        Preconditioner approximating ``A^{-1}`` (SPD; with ``flexible=True`` it may vary or
        be nonlinear, e.g. a network).
    callback : callable, optional
        Called as ``callback(x)`` after each iteration (``x`` shaped like ``b``).

    Other Parameters
    ----------------
    check_every : int, optional
        Look at the residual on the host every this many iterations (each look is a
        device-to-host sync). Default 1 on the CPU or with a preconditioner, 10 otherwise.
    flexible : bool
        Polak-Ribiere ``beta`` (flexible CG) for variable or nonlinear preconditioners; always
        on for a preconditioner tagged ``nonlinear`` (a learned one, which ``cg`` also binds to
        ``A``: see :class:`pdekit.models.dcdm.LearnedPreconditioner`). Where ``M r`` is no
        descent direction (``<r, M r> <= 0``) that step takes ``r`` instead and restarts the
        recursion (``beta = 0``); ``info`` counts such steps.

    Returns
    -------
    SolveResult
        ``x`` (shaped like ``b``), ``status``, ``iterations``, ``residual_norms``
        (``(iterations + 1, *batch)``), ``wall_time``, ``converged``, ``member_iterations``.

    Notes
    -----
    Rounding makes the recursively updated residual drift from the true one (notably in
    float32). Whenever the recursion says a member has converged, the true residual
    ``b - A x`` is computed; if it misses the tolerance, the member restarts from it. When
    three such restarts in a row fail to halve the true residual, the member stops with
    status ``STAGNATED`` (the tolerance is below the attainable accuracy).

    Raises
    ------
    ValueError
        Non-symmetric ``A``, mismatched shapes, NaN/Inf in ``b`` or ``x0``, negative tolerances.
    TypeError
        ``b`` or ``x0`` in another dtype than ``A``.
    """
    fn = "cg"
    start = time.perf_counter()
    A, b, x, batch_shape, flat = prepare_system(fn, A, b, x0)
    if A.symmetric is False:
        raise ValueError(
            f"{fn}: `A` is tagged symmetric=False; CG needs a symmetric positive definite "
            "operator (use a Krylov method for nonsymmetric systems, e.g. GMRES)"
        )
    rtol = check_tolerance(fn, "rtol", rtol)
    atol = check_tolerance(fn, "atol", atol)
    maxiter = check_maxiter(fn, maxiter, 10 * A.n)
    M = prepare_preconditioner(fn, A, M)
    flexible = flexible or bool(getattr(M, "nonlinear", False))
    if M is not None and M.symmetric is False and not flexible:
        raise ValueError(
            f"{fn}: `M` is tagged symmetric=False; pass `flexible=True` for a nonsymmetric or "
            "varying preconditioner"
        )
    if check_every is None:
        # a host sync costs microseconds: negligible beside a preconditioner application
        check_every = 1 if A.device.type == "cpu" or M is not None else 10
    check_every = check_positive_int(fn, "check_every", check_every)
    if callback is not None and not callable(callback):
        raise TypeError(f"{fn}: `callback` must be callable, got {type(callback).__name__}")

    batch = b.shape[0]
    b_norm = torch.linalg.vector_norm(b.reshape(batch, -1), dim=1)
    tol = torch.clamp(rtol * b_norm, min=atol)
    zero_rhs = b_norm == 0
    if x is None:
        x = torch.zeros_like(b)
    else:
        x = x.clone()
        x[zero_rhs] = 0  # as SciPy: b == 0 gives x == 0
    st = _State(A, M, b, x, flexible, check_every)
    r_norm = torch.linalg.vector_norm(st.r.reshape(batch, -1), dim=1)
    history = [r_norm.unsqueeze(0)]
    st.active.copy_((r_norm > tol) & ~zero_rhs)
    use_graph = (
        A.device.type == "cuda" and graphs_enabled() and A.capturable
        and (M is None or M.capturable)
    )
    runner = _BlockRunner(st, check_every, use_graph)
    member_iterations = torch.zeros(batch, dtype=torch.long)
    last_true_norm = torch.full((batch,), float("inf"), dtype=torch.float64)
    stalls = torch.zeros(batch, dtype=torch.long)
    stagnated = torch.zeros(batch, dtype=torch.bool)

    iterations = 0
    active_any = bool(st.active.any())
    while active_any and iterations < maxiter:
        block = min(check_every, maxiter - iterations)
        runner.run(block, None if callback is None else (
            lambda x: callback(A.merge_batch(x, batch_shape, flat))))
        iterations += block
        history.append(st.history[:block].clone())
        r_norm = st.history[block - 1]
        done = st.active & (r_norm <= tol)
        if bool(done.any()):
            # Confirm with the true residual before stopping anyone.
            true_r = b - A._matvec(st.x)
            true_norm = torch.linalg.vector_norm(true_r.reshape(batch, -1), dim=1)
            fake = done & (true_norm > tol)
            if bool(fake.any()):
                fake_cpu, norm_cpu = fake.cpu(), true_norm.double().cpu()
                progress = norm_cpu <= 0.5 * last_true_norm
                stalls[fake_cpu] = torch.where(progress, 0, stalls + 1)[fake_cpu]
                last_true_norm[fake_cpu] = norm_cpu[fake_cpu]
                stuck = fake_cpu & (stalls >= 3)
                stagnated |= stuck
                restart = _per_member(fake & ~stuck.to(fake.device), st.r)
                # restart the fake ones from their true residual
                st.r.copy_(torch.where(restart, true_r, st.r))
                z = st.apply_M()
                st.rho.copy_(batched_dot(st.r, z))
                st.p.copy_(torch.where(restart, z, st.p))
                history[-1][-1] = torch.where(fake, true_norm.to(r_norm.dtype), r_norm)
                st.active.copy_(st.active & ~stuck.to(st.active.device))
                done = done & ~fake
            member_iterations[done.cpu()] = iterations
            st.active.copy_(st.active & ~done)
        active_any = bool(st.active.any())

    x = st.x
    first_breakdown = st.first_breakdown
    breakdown_is_nan = st.breakdown_is_nan
    first_breakdown = first_breakdown.cpu()
    final_norm = history[-1][-1]
    converged = (final_norm <= tol) | zero_rhs
    if A.device.type == "cuda":
        torch.cuda.synchronize(A.device)
    converged = converged.cpu()
    member_iterations[~converged] = iterations
    status, info = SolveStatus.CONVERGED, ""
    if not bool(converged.all()):
        broken = (first_breakdown >= 0) & ~converged
        if bool((stagnated & ~converged).any()):
            i = int(torch.nonzero(stagnated & ~converged)[0])
            status = SolveStatus.STAGNATED
            where = f"batch member {i}: " if batch_shape else ""
            info = (f"{where}true residual {float(last_true_norm[i]):.3e} > tolerance "
                    f"{float(tol[i]):.3e}")
        elif bool(broken.any()):
            i = int(torch.nonzero(broken)[0])
            nan = bool(breakdown_is_nan.cpu()[i])
            status = SolveStatus.BREAKDOWN if nan else SolveStatus.NOT_POSITIVE_DEFINITE
            what = "NaN in p.Ap" if nan else "p.Ap <= 0"
            where = f"batch member {i}: " if batch_shape else ""
            info = f"{where}{what} at iteration {int(first_breakdown[i])}"
            member_iterations[broken] = first_breakdown[broken]
        else:
            status = SolveStatus.MAXITER
            info = f"maxiter={maxiter}, residual {float(final_norm.max()):.3e} > tolerance"
    if flexible and M is not None:
        fallbacks = int(st.fallbacks.max())
        if fallbacks:
            note = (f"{fallbacks} steepest-descent step{'s' if fallbacks > 1 else ''} where "
                    "<r, M r> <= 0" + (" (most in one batch member)" if batch_shape else ""))
            info = f"{info}; {note}" if info else note
    residual_norms = torch.cat(history).cpu()
    return SolveResult(
        x=A.merge_batch(x, batch_shape, flat),
        status=status,
        iterations=iterations,
        residual_norms=residual_norms.reshape(residual_norms.shape[0], *batch_shape),
        wall_time=time.perf_counter() - start,
        converged=converged.reshape(batch_shape),
        member_iterations=member_iterations.reshape(batch_shape),
        info=info,
    )
