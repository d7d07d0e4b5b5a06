"""The one result type of every iterative solver in :mod:`pdekit.linalg`."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import torch

__all__ = ["SolveResult", "SolveStatus"]


class SolveStatus(enum.Enum):
    """How a solve ended. Each member's value says what happened and what to try."""

    CONVERGED = "converged: the residual norm met max(rtol * ||b||, atol)"
    MAXITER = (
        "not converged: `maxiter` was reached before the tolerance; raise `maxiter`, "
        "loosen `rtol`, or use a stronger preconditioner (`M=`) or relaxation factor"
    )
    NOT_POSITIVE_DEFINITE = (
        "not positive definite: CG met p.Ap <= 0 (negative curvature); the operator or the "
        "preconditioner is not symmetric positive definite; check the boundary conditions "
        "and the sign of the operator"
    )
    BREAKDOWN = (
        "breakdown: a NaN or Inf appeared in the iteration; check the operator and the "
        "preconditioner for NaN/Inf, or solve in float64"
    )
    STAGNATED = (
        "stagnated: the true residual stopped decreasing above the tolerance (rounding limits "
        "the attainable accuracy, typically in float32); loosen `rtol` or solve in float64"
    )
    DIVERGED = (
        "diverged: the residual grew by more than 1e6 over its starting value; for SOR keep "
        "`omega` in (0, 2) and check that the matrix is symmetric positive definite or "
        "diagonally dominant"
    )

    @property
    def ok(self) -> bool:
        """True when the solve converged."""
        return self is SolveStatus.CONVERGED

    def __str__(self) -> str:
        return self.value


@dataclass
class SolveResult:
    """Result of an iterative solve.

    Attributes
    ----------
    x : torch.Tensor
        The solution, shaped like ``b``.
    status : SolveStatus
        Why the iteration stopped (for a batch: the first non-converged member's reason,
        else ``CONVERGED``).
    iterations : int
        Iterations performed (for a batch: the largest over its members).
    residual_norms : torch.Tensor
        ``||b - A x_k||_2`` for ``k = 0..iterations`` (the recursively updated residual where
        the method keeps one), shape ``(iterations + 1, *batch)``, on the CPU.
    wall_time : float
        Seconds spent, device work included.
    converged : torch.Tensor
        Boolean per batch member (a 0-d tensor for a single system).
    member_iterations : torch.Tensor
        Iterations each batch member needed (the first convergence check it passed).
    info : str
        Extra detail, such as the iteration at which negative curvature was met.
    """

    x: torch.Tensor
    status: SolveStatus
    iterations: int
    residual_norms: torch.Tensor
    wall_time: float
    converged: torch.Tensor = field(default_factory=lambda: torch.tensor(True))
    member_iterations: torch.Tensor = field(default_factory=lambda: torch.tensor(0))
    info: str = ""

    @property
    def message(self) -> str:
        """The status's explanation, with the detail of this solve."""
        return f"{self.status.value}{' (' + self.info + ')' if self.info else ''}"

    @property
    def final_residual_norm(self) -> torch.Tensor:
        """The last recorded residual norm (per batch member)."""
        return self.residual_norms[-1]

    def raise_for_status(self) -> SolveResult:
        """Raise ``RuntimeError`` with the status message unless the solve converged."""
        if not self.status.ok:
            raise RuntimeError(self.message)
        return self

    def __repr__(self) -> str:
        res = self.residual_norms[-1]
        res_text = f"{res.item():.3e}" if res.numel() == 1 else f"max {res.max().item():.3e}"
        return (
            f"SolveResult(status={self.status.name}, iterations={self.iterations}, "
            f"residual_norm={res_text}, wall_time={self.wall_time:.4g}s, "
            f"x.shape={tuple(self.x.shape)})"
        )
