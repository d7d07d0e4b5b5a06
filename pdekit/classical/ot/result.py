"""The one result type of every optimal-transport solver in :mod:`pdekit.classical.ot`."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import torch

__all__ = ["OTResult", "OTStatus"]


class OTStatus(enum.Enum):
    """How an OT solve ended. Each member's value says what happened and what to try."""

    CONVERGED = "converged: the L1 marginal violation ||P 1 - a||_1 + ||P^T 1 - b||_1 met `tol`"
    MAXITER = (
        "not converged: `maxiter` was reached before the marginal violation met `tol`; raise "
        "`maxiter`, loosen `tol`, warm-start with `eps_scaling`, or use "
        "`sinkhorn_newton_sparse` (small `eps` makes Sinkhorn slow)"
    )
    STAGNATED = (
        "stagnated: the marginal violation stopped decreasing above `tol` (rounding limits the "
        "attainable accuracy, typically about 1e-6 in float32); loosen `tol` or solve in float64"
    )
    BREAKDOWN = (
        "breakdown: NaN or Inf appeared even in the log-domain iteration; check the cost for "
        "huge values and the marginals for NaN, or solve in float64"
    )
    LINE_SEARCH_FAILED = (
        "line search failed: no step along the Newton direction reduced the marginal violation "
        "(the sparsified Hessian is too coarse); raise `keep_per_row` or the warm-up "
        "iterations, or loosen `tol`"
    )

    @property
    def ok(self) -> bool:
        """True when the solve converged."""
        return self is OTStatus.CONVERGED

    def __str__(self) -> str:
        return self.value


@dataclass
class OTResult:
    """Result of an entropic or sparsity-constrained OT solve.

    Shapes below are for one problem; a batch adds a leading dimension ``B`` to every tensor
    except the histories (which add a trailing one).

    Attributes
    ----------
    f, g : torch.Tensor
        Dual potentials, ``(n,)`` and ``(m,)``, with ``plan = exp((f_i + g_j - C_ij) / eps)``
        for entropic OT (POT's ``log_u = f / eps``, ``log_v = g / eps``). ``-inf`` where a
        marginal is zero.
    plan : torch.Tensor or None
        The transport plan ``(n, m)``; None when ``return_plan=False``.
    cost : torch.Tensor
        Transport cost ``<plan, C>`` (0-d, or ``(B,)``).
    iterations : int
        Iterations performed (Sinkhorn iterations plus Newton steps; for a batch the largest).
    marginal_error : torch.Tensor
        The final L1 marginal violation ``||P 1 - a||_1 + ||P^T 1 - b||_1`` (0-d or ``(B,)``).
    status : OTStatus
        Why the iteration stopped (for a batch: the first non-converged member's reason).
    marginal_error_history : torch.Tensor
        The marginal violation at each check, ``(checks, *batch)``, float64 on the CPU.
    history_iterations : torch.Tensor
        The iteration count at each check, ``(checks,)``.
    history_seconds : torch.Tensor
        Seconds since the start at each check, ``(checks,)`` (device work included).
    wall_time : float
        Seconds spent in total.
    converged : torch.Tensor
        Boolean per batch member (0-d for one problem).
    member_iterations : torch.Tensor
        Iterations each member needed (its first passing check).
    newton_iterations, cg_iterations : int
        Newton steps and CG iterations in total (Sinkhorn-Newton-Sparse only).
    info : str
        Extra detail, such as the marginal violation reached.
    """

    f: torch.Tensor
    g: torch.Tensor
    plan: torch.Tensor | None
    cost: torch.Tensor
    iterations: int
    marginal_error: torch.Tensor
    status: OTStatus
    marginal_error_history: torch.Tensor
    history_iterations: torch.Tensor
    history_seconds: torch.Tensor
    wall_time: float
    converged: torch.Tensor = field(default_factory=lambda: torch.tensor(True))
    member_iterations: torch.Tensor = field(default_factory=lambda: torch.tensor(0))
    newton_iterations: int = 0
    cg_iterations: int = 0
    info: str = ""

    @property
    def message(self) -> str:
        """The status's explanation, with the detail of this solve."""
        return f"{self.status.value}{' (' + self.info + ')' if self.info else ''}"

    def raise_for_status(self) -> OTResult:
        """Raise ``RuntimeError`` with the status message unless the solve converged."""
        if not self.status.ok:
            raise RuntimeError(self.message)
        return self

    def __repr__(self) -> str:
        err = self.marginal_error
        err_text = f"{err.item():.3e}" if err.numel() == 1 else f"max {err.max().item():.3e}"
        cost = self.cost
        cost_text = f"{cost.item():.6g}" if cost.numel() == 1 else f"shape {tuple(cost.shape)}"
        return (
            f"OTResult(status={self.status.name}, iterations={self.iterations}, "
            f"marginal_error={err_text}, cost={cost_text}, wall_time={self.wall_time:.4g}s)"
        )
