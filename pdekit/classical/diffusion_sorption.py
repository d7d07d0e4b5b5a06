"""1D diffusion-sorption, the PDEBench setup: a batched implicit reference solver.

The PDE (Takamoto et al., "PDEBench", NeurIPS 2022 Datasets and Benchmarks, eq. 7; used by
Chalapathi et al., "Scaling physics-informed hard constraints with mixture-of-experts",
ICLR 2024, section 5.1) is

    u_t = D / R(u) u_xx,   R(u) = 1 + ((1 - phi) / phi) rho_s k n_f u^(n_f - 1),

on ``x in (0, 1)``, ``t in (0, 500]``, with ``D = 5e-4``, ``phi = 0.29``, ``rho_s = 2880``,
``k = 3.5e-4``, ``n_f = 0.874``, the boundary conditions ``u(0, t) = 1`` and
``u(1, t) = D u_x(1, t)``, and a spatially constant initial value ``u(x, 0) = u0 ~ U(0, 0.2)``.

Discretisation (PDEBench's): ``nx`` cells of width ``dx = 1/nx`` with centres
``x_i = (i + 1/2) dx``, the 3-point Laplacian with the ghost values ``u_{-1} = 1`` and
``u_nx = D (u_{nx-2} - u_{nx-1}) / dx``, and ``R`` evaluated at ``u + 1e-6`` (the power is
singular at zero). PDEBench integrates the resulting ODE explicitly (``solve_ivp``, RK45);
here it is integrated implicitly by BDF2 (first step backward Euler) with Newton's method on
every step: the Jacobian is tridiagonal per trajectory, and a whole batch is one banded solve
(``scipy.linalg.solve_banded`` on the block-diagonal matrix), so a batch costs little more than
one trajectory.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg

__all__ = ["DiffusionSorptionCoefficients", "DiffusionSorptionSolution", "retardation",
           "solve_diffusion_sorption"]


@dataclass(frozen=True)
class DiffusionSorptionCoefficients:
    """The PDEBench / PI-HC-MoE coefficients (Freundlich sorption isotherm)."""

    D: float = 5e-4
    phi: float = 0.29
    rho_s: float = 2880.0
    k: float = 3.5e-4
    n_f: float = 0.874
    inflow: float = 1.0
    epsilon: float = 1e-6

    @property
    def sorption(self) -> float:
        """``((1 - phi) / phi) rho_s k n_f``: the factor of ``u^(n_f - 1)`` in ``R``."""
        return (1.0 - self.phi) / self.phi * self.rho_s * self.k * self.n_f


@dataclass
class DiffusionSorptionSolution:
    """``u``: (batch, nt, nx) at times ``t`` and cell centres ``x``; ``newton_iterations``: the
    largest number of Newton iterations any step took."""

    u: np.ndarray
    t: np.ndarray
    x: np.ndarray
    newton_iterations: int


def retardation(u, coefficients: DiffusionSorptionCoefficients = DiffusionSorptionCoefficients()):
    """``R(u) = 1 + c (u + eps)^(n_f - 1)`` with ``u`` clipped at zero (numpy or torch)."""
    c = coefficients
    if isinstance(u, np.ndarray):
        return 1.0 + c.sorption * (np.maximum(u, 0.0) + c.epsilon) ** (c.n_f - 1.0)
    return 1.0 + c.sorption * (u.clamp(min=0.0) + c.epsilon) ** (c.n_f - 1.0)


def _retardation_derivative(u: np.ndarray, c: DiffusionSorptionCoefficients) -> np.ndarray:
    return np.where(u > 0, c.sorption * (c.n_f - 1.0) * (np.maximum(u, 0.0) + c.epsilon) ** (c.n_f - 2.0),
                    0.0)


def solve_diffusion_sorption(
    u0,
    *,
    nx: int = 1024,
    t_end: float = 500.0,
    nt: int = 101,
    substeps: int = 20,
    coefficients: DiffusionSorptionCoefficients = DiffusionSorptionCoefficients(),
    newton_tol: float = 1e-11,
    max_newton: int = 30,
) -> DiffusionSorptionSolution:
    """Solve a batch of diffusion-sorption trajectories (PDEBench setup, see the module).

    Parameters
    ----------
    u0 : float or array of shape (batch,) or (batch, nx)
        Initial values (PDEBench: one constant per trajectory, drawn from ``U(0, 0.2)``).
    nx, t_end, nt : int, float, int
        Cells, final time, stored times (``t = linspace(0, t_end, nt)``).
    substeps : int
        BDF2 steps between stored times.
    newton_tol, max_newton : float, int
        Newton stops when the largest update is below ``newton_tol``; a step that needs more
        than ``max_newton`` iterations raises ``RuntimeError``.

    Returns
    -------
    DiffusionSorptionSolution
    """
    if nx < 4 or nt < 2 or substeps < 1 or t_end <= 0:
        raise ValueError(f"solve_diffusion_sorption: need nx >= 4, nt >= 2, substeps >= 1 and "
                         f"t_end > 0, got nx={nx}, nt={nt}, substeps={substeps}, t_end={t_end}")
    u = np.asarray(u0, dtype=np.float64)
    if u.ndim == 0:
        u = u[None]
    if u.ndim == 1:
        u = np.repeat(u[:, None], nx, axis=1)
    if u.ndim != 2 or u.shape[1] != nx:
        raise ValueError(f"solve_diffusion_sorption: `u0` must be a number, (batch,) or (batch, {nx}), "
                         f"got shape {np.shape(u0)}")
    if not np.all(np.isfinite(u)):
        raise ValueError("solve_diffusion_sorption: `u0` holds NaN or Inf")
    c = coefficients
    batch = u.shape[0]
    dx = 1.0 / nx
    x = (np.arange(nx) + 0.5) * dx
    t = np.linspace(0.0, t_end, nt)
    dt = (t[1] - t[0]) / substeps
    a = c.D / dx**2
    gamma = c.D / dx  # the right ghost value u_nx = gamma (u_{nx-2} - u_{nx-1})

    def laplacian(v: np.ndarray) -> np.ndarray:
        lap = np.empty_like(v)
        lap[:, 1:-1] = v[:, :-2] - 2 * v[:, 1:-1] + v[:, 2:]
        lap[:, 0] = c.inflow - 2 * v[:, 0] + v[:, 1]
        lap[:, -1] = v[:, -2] - 2 * v[:, -1] + gamma * (v[:, -2] - v[:, -1])
        return lap

    def rhs(v: np.ndarray) -> np.ndarray:
        return a / retardation(v, c) * laplacian(v)

    # Banded Jacobian of rhs(v) (tridiagonal per trajectory, zero coupling between them).
    def jacobian_bands(v: np.ndarray):
        R = retardation(v, c)
        lap = laplacian(v)
        scale = a / R
        diag = scale * -2.0 - a * _retardation_derivative(v, c) / R**2 * lap
        diag[:, -1] -= gamma * scale[:, -1]  # the right ghost value depends on u_{nx-1}
        lower = scale.copy()  # d rhs_i / d v_{i-1}
        lower[:, -1] = scale[:, -1] * (1.0 + gamma)
        upper = scale.copy()  # d rhs_i / d v_{i+1}
        return lower, diag, upper

    def implicit_step(v_known: np.ndarray, beta: float, v_guess: np.ndarray) -> tuple[np.ndarray, int]:
        # Solve v - beta * dt * rhs(v) = v_known by Newton.
        v = v_guess.copy()
        for it in range(1, max_newton + 1):
            g = v - beta * dt * rhs(v) - v_known
            lower, diag, upper = jacobian_bands(v)
            ab = np.zeros((3, batch * nx))
            up = -beta * dt * upper
            up[:, -1] = 0.0
            lo = -beta * dt * lower
            lo[:, 0] = 0.0
            ab[0, 1:] = up.reshape(-1)[:-1]
            ab[1] = (1.0 - beta * dt * diag).reshape(-1)
            ab[2, :-1] = lo.reshape(-1)[1:]
            delta = scipy.linalg.solve_banded((1, 1), ab, -g.reshape(-1), check_finite=False)
            delta = delta.reshape(batch, nx)
            v += delta
            update = float(np.abs(delta).max())
            if update <= newton_tol:
                return v, it
        raise RuntimeError(f"solve_diffusion_sorption: Newton did not converge in {max_newton} iterations "
                           f"(last update {update:.2e}); use more `substeps`")

    out = np.empty((batch, nt, nx))
    out[:, 0] = u
    previous = None
    most = 0
    for n in range(1, nt):
        for _ in range(substeps):
            if previous is None:  # backward Euler start
                new, its = implicit_step(u, 1.0, u)
            else:  # BDF2: v - 2/3 dt f(v) = 4/3 u^n - 1/3 u^(n-1)
                new, its = implicit_step(4.0 / 3.0 * u - 1.0 / 3.0 * previous, 2.0 / 3.0, 2 * u - previous)
            most = max(most, its)
            previous, u = u, new
        out[:, n] = u
    return DiffusionSorptionSolution(u=out, t=t, x=x, newton_iterations=most)
