"""The heat-equation sequence of the paper: one SSOR-PCG solve per Crank-Nicolson step.

Khodak et al., "Learning to Relax", ICLR 2024 (arXiv 2310.02246), Sec. 5 (the ``h2d``
experiment): ``u_t = kappa(t) Laplacian u + f(t, x)`` on the unit square, zero Dirichlet
boundary, ``nx`` cells per side (``(nx - 1)^2`` unknowns, ``h = 1 / nx``), Crank-Nicolson
with ``dt = 1e-3``:

    (I - kappa dt / 2 L_h) u^{k+1} = (I + kappa dt / 2 L_h) u^k + dt f(t_{k+1/2}),

``kappa`` and ``f`` taken at the half step. The diffusivity is
``kappa(t) = max(0.1 sin 2 pi t, -10 sin 2 pi t)``, the forcing ``32 bump(x; c(t), 0.125)``
with ``c(t)`` on the circle of radius 1/4 about the centre (angular speed ``16 pi``), the
initial condition ``bump(x; (1/2, 1/2), 1/4)``, ``bump(x; c, r) = exp(1 - 1/(1 - |x-c|^2/r^2))``
inside the ball, 0 outside. Each step's system is SPD; its context is ``kappa``.

All methods are compared on one sequence of systems: the right-hand sides and warm starts
``x0 = u^k`` come from a reference trajectory solved to ``rtol = 1e-12`` (a method's own
solutions differ from it by its tolerance, 1e-8). ``kappa`` is periodic with period 1, so
with ``1 / dt`` an integer the steps one period apart have the same matrix exactly
(:meth:`HeatEquationSequence.matrix_groups`), and their solves can be batched.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from pdekit.classical.sor_tuning.sequences import check_length
from pdekit.linalg import StencilOperator, cg, ssor

__all__ = ["HeatEquationSequence", "bump", "diffusivity"]


def diffusivity(t) -> np.ndarray:
    """``kappa(t) = max(0.1 sin 2 pi t, -10 sin 2 pi t)`` (the paper's time-varying coefficient)."""
    s = np.sin(2.0 * np.pi * np.asarray(t, dtype=np.float64))
    return np.maximum(0.1 * s, -10.0 * s)


def bump(points: np.ndarray, center, radius: float) -> np.ndarray:
    """Smooth bump ``exp(1 - 1 / (1 - |x - c|^2 / r^2))`` inside the ball, 0 outside.

    ``points`` has shape ``(..., 2)``; the result has shape ``(...)``.
    """
    q = np.sum((points - np.asarray(center)) ** 2, axis=-1) / radius**2
    inside = q < 1.0
    out = np.zeros(q.shape)
    out[inside] = np.exp(1.0 - 1.0 / (1.0 - q[inside]))
    return out


class HeatEquationSequence:
    """``instances`` Crank-Nicolson systems of the 2D heat equation on an ``nx`` grid.

    Parameters
    ----------
    nx : int
        Cells per side (the paper: 25, 50, 100, 200); ``(nx - 1)^2`` unknowns.
    instances : int
        Time steps (the paper: 5,000).
    dt : float
        Time step (1e-3).

    Other Parameters
    ----------------
    reference_rtol : float
        Tolerance of the reference trajectory (1e-12).

    Attributes
    ----------
    contexts : numpy.ndarray ``(T,)``
        ``kappa`` at each half step.
    context_range : (float, float)
        Least and largest ``kappa`` over the sequence.
    """

    def __init__(self, nx: int, instances: int = 5000, *, dt: float = 1e-3,
                 reference_rtol: float = 1e-12) -> None:
        fn = "HeatEquationSequence"
        if isinstance(nx, bool) or not isinstance(nx, int) or nx < 3:
            raise ValueError(f"{fn}: `nx` must be an integer >= 3, got {nx!r}")
        self.length = check_length(fn, instances)
        dt = float(dt)
        if not (dt > 0 and math.isfinite(dt)):
            raise ValueError(f"{fn}: `dt` must be positive, got {dt}")
        self.nx, self.dt = nx, dt
        self.h = 1.0 / nx
        m = nx - 1
        self.grid_shape = (m, m)
        coords = np.arange(1, nx) * self.h
        self.points = np.stack(np.meshgrid(coords, coords, indexing="ij"), axis=-1)
        # kappa from the phase within its period, so equal phases give identical matrices
        steps = np.arange(self.length)
        period = round(1.0 / dt)
        if abs(period * dt - 1.0) < 1e-12:
            self._phase = steps % period
            half_times = (self._phase + 0.5) * dt
        else:
            self._phase = steps
            half_times = (steps + 0.5) * dt
        self.contexts = diffusivity(half_times)
        self.times = (steps + 0.5) * dt  # physical half-step times (forcing)
        self.context_range = (float(self.contexts.min()), float(self.contexts.max()))
        self.name = f"heat2d-{nx}"
        self._states = self._reference_trajectory(reference_rtol)

    def __len__(self) -> int:
        return self.length

    def operator(self, t: int) -> StencilOperator:
        """``A_t = I - (kappa dt / 2) L_h`` as a stencil operator (float64, CPU)."""
        s = float(self.contexts[t]) * self.dt / (2.0 * self.h**2)
        m = self.nx - 1
        diag = torch.full(self.grid_shape, 1.0 + 4.0 * s, dtype=torch.float64)
        couplings = [torch.full((m - 1, m), s, dtype=torch.float64),
                     torch.full((m, m - 1), s, dtype=torch.float64)]
        return StencilOperator.from_explicit(diag, couplings, spacing=self.h,
                                             positive_definite=True)

    def forcing(self, t: int) -> np.ndarray:
        """``f`` at the half step of instance ``t`` on the grid."""
        time = self.times[t]
        center = (0.5 + math.cos(16.0 * math.pi * time) / 4.0,
                  0.5 + math.sin(16.0 * math.pi * time) / 4.0)
        return 32.0 * bump(self.points, center, 0.125)

    def _rhs_from(self, t: int, u: torch.Tensor, A: StencilOperator) -> torch.Tensor:
        # (I + kappa dt/2 L_h) u = 2u - A u
        f = torch.from_numpy(self.forcing(t))
        return 2.0 * u - A.matvec(u) + self.dt * f

    def _reference_trajectory(self, rtol: float) -> list[torch.Tensor]:
        u = torch.from_numpy(bump(self.points, (0.5, 0.5), 0.25))
        states = [u]
        for t in range(self.length):
            A = self.operator(t)
            b = self._rhs_from(t, u, A)
            result = cg(A, b, u, rtol=rtol, maxiter=10_000, M=ssor(A, 1.5))
            u = result.x
            states.append(u)
        return states

    def x0(self, t: int) -> torch.Tensor:
        """Warm start of instance ``t``: the (reference) solution of the previous step."""
        return self._states[t]

    def rhs(self, t: int) -> torch.Tensor:
        """``b_t = (I + kappa dt / 2 L_h) u^t + dt f(t_{k+1/2})``, on the grid."""
        return self._rhs_from(t, self._states[t], self.operator(t))

    def solution(self, t: int) -> torch.Tensor:
        """The reference solution of instance ``t`` (the state after step ``t``)."""
        return self._states[t + 1]

    def matrix_groups(self) -> list[np.ndarray]:
        """Lists of instances that share one matrix (steps a period of ``kappa`` apart)."""
        order = np.argsort(self._phase, kind="stable")
        phases = self._phase[order]
        cuts = np.flatnonzero(np.diff(phases)) + 1
        return np.split(order, cuts)
