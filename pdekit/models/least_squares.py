"""Batched Levenberg-Marquardt and its implicit-function-theorem backward pass.

The differentiable nonlinear least-squares solve inside the physics-informed hard-constraint
layer (Chalapathi, Du, Krishnapriyan, "Scaling physics-informed hard constraints with
mixture-of-experts", ICLR 2024, section 3 and appendix A): given a residual function
``F(w; p)`` of ``N`` unknowns and parameters ``p`` (tensors that depend on the network),

    w*(p) = argmin_w  1/2 ||F(w; p)||^2.

* :func:`levenberg_marquardt` solves a batch of such problems together (``torch.func.vmap``
  over the batch; the Jacobian by ``jacfwd``, ``N`` forward passes; the damped normal equations
  ``(J^T J + lambda diag(J^T J)) delta = -J^T F`` are small dense ``N x N`` solves). It stops a
  problem when the gradient of the objective ``g = J^T F`` satisfies
  ``||g|| <= atol + rtol ||g_0||``, or after ``maxiter`` iterations.
* :func:`solve_least_squares` wraps it as a ``torch.autograd.Function`` whose backward pass
  uses the implicit function theorem at the optimum, where ``g(w*, p) = 0``:

      dw*/dp = -H^-1 dg/dp,   H = dg/dw  (the exact Hessian of the objective),

  so a cotangent ``v`` of ``w*`` becomes ``-(dg/dp)^T H^-1 v``: one ``N x N`` solve and one
  vector-Jacobian product, never an unrolled LM and never an explicit inverse.

Everything follows the dtype of the inputs; the hard-constraint layer calls it in float64.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.func import grad, jacfwd, vjp, vmap

__all__ = ["LeastSquaresResult", "levenberg_marquardt", "solve_least_squares"]

Residual = Callable[..., torch.Tensor]  # F(w: (N,), *params) -> (M,), one problem


@dataclass
class LeastSquaresResult:
    """``w``: (batch, N) solutions; ``iterations``: (batch,) LM iterations taken;
    ``gradient_norm``: (batch,) final ``||J^T F||``; ``tolerance``: (batch,) the stopping
    threshold ``atol + rtol ||g_0||``; ``converged``: (batch,) bool; ``cost``: ``1/2 ||F||^2``."""

    w: torch.Tensor
    iterations: torch.Tensor
    gradient_norm: torch.Tensor
    tolerance: torch.Tensor
    converged: torch.Tensor
    cost: torch.Tensor


def levenberg_marquardt(fun: Residual, w0: torch.Tensor, params: tuple[torch.Tensor, ...], *,
                        maxiter: int = 50, rtol: float = 1e-8, atol: float = 1e-12,
                        damping: float = 1e-3, jacobian: Residual | None = None) -> LeastSquaresResult:
    """Solve ``min_w 1/2 ||fun(w, *params)||^2`` for a batch of problems by Levenberg-Marquardt.

    Parameters
    ----------
    fun : callable
        ``fun(w, *params) -> (M,)`` for one problem (``w``: (N,)); vectorised with ``vmap``.
    w0 : Tensor (batch, N)
        Starting points (not modified).
    params : tuple of Tensor
        Per-problem parameters, each with the batch as leading dimension.
    maxiter, rtol, atol : int, float, float
        Iteration cap and the gradient stopping test ``||J^T F|| <= atol + rtol ||J^T F(w0)||``.
    damping : float
        Initial Marquardt damping ``lambda`` (scaled by ``diag(J^T J)``).
    jacobian : callable, optional
        ``jacobian(w, *params) -> (M, N)`` for one problem, when known in closed form (default:
        ``torch.func.jacfwd`` of ``fun``).

    Returns
    -------
    LeastSquaresResult
    """
    if w0.dim() != 2:
        raise ValueError(f"levenberg_marquardt: `w0` must be (batch, N), got shape {tuple(w0.shape)}")
    if maxiter < 0 or rtol < 0 or atol < 0 or damping <= 0:
        raise ValueError("levenberg_marquardt: need maxiter, rtol, atol >= 0 and damping > 0")
    residual = vmap(fun)
    jacobian = vmap(jacobian if jacobian is not None else jacfwd(fun, argnums=0))
    batch, n = w0.shape
    w = w0.detach().clone()
    lam = torch.full((batch,), float(damping), dtype=w.dtype, device=w.device)
    eye = torch.eye(n, dtype=w.dtype, device=w.device)
    iterations = torch.zeros(batch, dtype=torch.long, device=w.device)
    r = residual(w, *params)
    cost = 0.5 * r.square().sum(-1)
    J = jacobian(w, *params)
    g = torch.einsum("bmn,bm->bn", J, r)
    tolerance = atol + rtol * g.norm(dim=-1)
    active = g.norm(dim=-1) > tolerance
    for _ in range(maxiter):
        if not bool(active.any()):
            break
        JtJ = J.transpose(1, 2) @ J
        scale = torch.diagonal(JtJ, dim1=1, dim2=2).clamp(min=1e-12)
        A = JtJ + lam[:, None, None] * torch.diag_embed(scale) + 1e-14 * eye
        delta = -torch.linalg.solve(A, g)
        trial = w + delta
        r_trial = residual(trial, *params)
        cost_trial = 0.5 * r_trial.square().sum(-1)
        predicted = -(delta * g).sum(-1) - 0.5 * torch.einsum("bn,bnm,bm->b", delta, JtJ, delta)
        rho = (cost - cost_trial) / predicted.clamp(min=torch.finfo(w.dtype).tiny)
        # a step is taken when it lowers the cost, or leaves it unchanged to rounding (near the
        # optimum the cost no longer resolves the gradient's progress)
        slack = 16 * torch.finfo(w.dtype).eps * cost
        accept = active & torch.isfinite(cost_trial) & (cost_trial <= cost + slack)
        w = torch.where(accept[:, None], trial, w)
        r = torch.where(accept[:, None], r_trial, r)
        cost = torch.where(accept, cost_trial, cost)
        # Nielsen's damping update on success, doubling on failure
        factor = torch.clamp(1 - (2 * rho - 1) ** 3, min=1 / 3, max=2.0).nan_to_num(1 / 3)
        lam = torch.where(accept, lam * factor, torch.where(active, lam * 4.0, lam))
        iterations = iterations + active.long()
        if bool(accept.any()):
            J_new = jacobian(w, *params)
            J = torch.where(accept[:, None, None], J_new, J)
            g = torch.einsum("bmn,bm->bn", J, r)
        active = active & (g.norm(dim=-1) > tolerance)
    gnorm = g.norm(dim=-1)
    return LeastSquaresResult(w=w, iterations=iterations, gradient_norm=gnorm, tolerance=tolerance,
                              converged=gnorm <= tolerance, cost=cost)


def _objective_gradient(fun: Residual) -> Callable[..., torch.Tensor]:
    def objective(w, *params):
        return 0.5 * fun(w, *params).square().sum()

    return grad(objective, argnums=0)


class _ImplicitLeastSquares(torch.autograd.Function):
    @staticmethod
    def forward(ctx, fun, options, w0, *params):
        with torch.no_grad():
            result = levenberg_marquardt(fun, w0, tuple(p.detach() for p in params), **options)
        ctx.fun = fun
        ctx.save_for_backward(result.w, *params)
        ctx.mark_non_differentiable(result.iterations, result.gradient_norm)
        return result.w, result.iterations, result.gradient_norm

    @staticmethod
    def backward(ctx, grad_w, _grad_iterations, _grad_norm):
        w, *params = ctx.saved_tensors
        params = [p.detach() for p in params]
        gradient = _objective_gradient(ctx.fun)
        with torch.enable_grad():
            H = vmap(jacfwd(gradient, argnums=0))(w, *params)
            H = 0.5 * (H + H.transpose(1, 2))
            adjoint = torch.linalg.solve(H, grad_w.to(w.dtype))
            _, pullback = vjp(lambda *p: vmap(gradient)(w, *p), *params)
            grads = pullback(-adjoint)
        return (None, None, None, *grads)


def solve_least_squares(fun: Residual, w0: torch.Tensor, params: tuple[torch.Tensor, ...], **options
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Differentiable ``w*(params) = argmin 1/2 ||fun(w, *params)||^2`` (batched LM forward,
    implicit-function-theorem backward; see the module docstring).

    Returns ``(w, iterations, gradient_norm)``; gradients flow to ``params`` (not to ``w0``).
    ``options`` are those of :func:`levenberg_marquardt`.
    """
    return _ImplicitLeastSquares.apply(fun, options, w0, *params)
