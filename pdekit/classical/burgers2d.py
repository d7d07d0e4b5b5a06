"""The 2D viscous Burgers equation: a batched pseudo-spectral solver.

``u_t + u (u_x + u_y) = nu (u_xx + u_yy)`` for a scalar ``u`` on the periodic unit square, the
2D Burgers benchmark of the moving-mesh solver MM-PDE (Hu, Wang, Ma, "Better Neural PDE Solvers
Through Data-Free Mesh Movers", ICLR 2024, section 5.1): fronts steepen along the diagonal and
are smoothed by viscosity, so a uniform coarse grid under-resolves them.

In Fourier space ``v_t = -nu |k|^2 v + N(v)`` with ``N(v) = -(i (k_x + k_y) / 2) F[u^2]``
(conservative form, 2/3-rule dealiased). Time stepping is the integrating-factor fourth-order
Runge-Kutta scheme (diffusion integrated exactly; Trefethen, "Spectral Methods in MATLAB",
ch. 10), with a CFL-limited number of substeps per stored frame. Batched over trajectories
(each with its own viscosity), on any device and float dtype.

:func:`burgers2d_exact` is an exact solution by the Cole-Hopf transform (for ``u`` depending
on ``x + y`` only, the equation reduces to the 1D Burgers equation with viscosity ``2 nu``),
used by the tests.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["burgers2d_exact", "burgers2d_initial_condition", "fourier_interpolate", "solve_burgers2d"]


def _wavenumbers(points: int, dtype, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(kx (n, 1), ky (1, n // 2 + 1), dealias (n, n // 2 + 1))`` of the rfft2 on [0, 1)^2."""
    kx = 2 * math.pi * torch.fft.fftfreq(points, 1.0 / points, dtype=dtype, device=device)
    ky = 2 * math.pi * torch.fft.rfftfreq(points, 1.0 / points, dtype=dtype, device=device)
    m = torch.fft.fftfreq(points, 1.0 / points, device=device).abs()
    my = torch.fft.rfftfreq(points, 1.0 / points, device=device)
    dealias = ((m[:, None] < points / 3) & (my[None, :] < points / 3)).to(dtype)
    return kx[:, None], ky[None, :], dealias


def solve_burgers2d(u0: torch.Tensor, *, nu: float | torch.Tensor, t_end: float, frames: int,
                    cfl: float = 0.4, max_substeps: int = 10_000) -> torch.Tensor:
    """Solve ``u_t + u (u_x + u_y) = nu Laplacian u`` on the periodic unit square.

    Parameters
    ----------
    u0 : torch.Tensor
        Initial conditions ``(batch, n, n)`` on the nodes ``(i / n, j / n)`` (``x`` first).
    nu : float or torch.Tensor
        Viscosity, a number or one per trajectory ``(batch,)``.
    t_end : float
        Final time; frames are stored at ``t_end * j / (frames - 1)``, the first being ``u0``.
    frames : int
        Stored frames (>= 2).
    cfl : float
        Substeps per frame are chosen so that ``dt max|u| (2 / h) <= cfl`` for the initial
        maximum (Burgers' maximum principle: ``max|u|`` never grows).

    Returns
    -------
    torch.Tensor
        ``(batch, frames, n, n)``, in ``u0``'s dtype and device.
    """
    if u0.ndim != 3 or u0.shape[1] != u0.shape[2]:
        raise ValueError(f"solve_burgers2d: `u0` must be (batch, n, n), got {tuple(u0.shape)}")
    if not torch.isfinite(u0).all():
        raise ValueError("solve_burgers2d: `u0` contains NaN or Inf")
    if frames < 2 or t_end <= 0:
        raise ValueError(f"solve_burgers2d: need frames >= 2 and t_end > 0, got {frames}, {t_end}")
    batch, n = u0.shape[0], u0.shape[1]
    dtype, device = u0.dtype, u0.device
    nu = torch.as_tensor(nu, dtype=dtype, device=device).reshape(-1)
    if nu.numel() == 1:
        nu = nu.expand(batch)
    if nu.numel() != batch or (nu <= 0).any():
        raise ValueError("solve_burgers2d: `nu` must be positive, one number or one per trajectory")
    kx, ky, dealias = _wavenumbers(n, dtype, device)
    k2 = kx**2 + ky**2
    ksum = 1j * (kx + ky) / 2
    frame_dt = t_end / (frames - 1)
    umax = float(u0.abs().max())
    substeps = max(1, math.ceil(frame_dt * umax * 2 * n / cfl))
    if substeps > max_substeps:
        raise ValueError(f"solve_burgers2d: {substeps} substeps per frame exceed max_substeps")
    h = frame_dt / substeps
    decay_half = torch.exp(-nu[:, None, None] * k2 * (h / 2))  # integrating factor over h/2
    decay = decay_half**2

    def nonlinear(v: torch.Tensor) -> torch.Tensor:
        u = torch.fft.irfft2(v, s=(n, n))
        return -ksum * torch.fft.rfft2(u * u) * dealias

    v = torch.fft.rfft2(u0)
    out = [u0]
    for _ in range(frames - 1):
        for _ in range(substeps):
            a = h * nonlinear(v)
            b = h * nonlinear(decay_half * (v + a / 2))
            c = h * nonlinear(decay_half * v + b / 2)
            d = h * nonlinear(decay * v + decay_half * c)
            v = decay * v + (decay * a + 2 * decay_half * (b + c) + d) / 6
        out.append(torch.fft.irfft2(v, s=(n, n)))
    return torch.stack(out, dim=1)


def burgers2d_initial_condition(points: int, rng: np.random.Generator, *, terms: int = 6,
                                wavenumbers: int = 3, amplitude: float = 1.0) -> np.ndarray:
    """A random smooth periodic initial condition on the ``points x points`` nodes.

    ``u0 = sum_j A_j sin(2 pi (l_j x + m_j y) + phi_j)`` with ``terms`` terms, integer
    ``l_j, m_j`` in ``[-wavenumbers, wavenumbers]`` (not both zero), ``A_j ~ U(-1, 1)``,
    ``phi_j ~ U(0, 2 pi)``, rescaled so that ``max |u0| = amplitude`` (the sum-of-sines family of
    the MP-PDE / MM-PDE generators).
    """
    x = np.arange(points) / points
    X, Y = np.meshgrid(x, x, indexing="ij")
    u = np.zeros((points, points))
    for _ in range(terms):
        while True:
            lm = rng.integers(-wavenumbers, wavenumbers + 1, size=2)
            if lm.any():
                break
        u += rng.uniform(-1, 1) * np.sin(2 * np.pi * (lm[0] * X + lm[1] * Y) + rng.uniform(0, 2 * np.pi))
    return amplitude * u / np.abs(u).max()


def burgers2d_exact(x: torch.Tensor, y: torch.Tensor, t: float, *, nu: float, mode: int = 1,
                    offset: float = 2.0) -> torch.Tensor:
    """An exact solution by the Cole-Hopf transform, periodic on the unit square.

    With ``s = x + y`` and ``u = V(s, t) / 2``, the equation becomes ``V_t + V V_s = 2 nu V_ss``;
    ``V = -4 nu psi_s / psi`` for the heat equation ``psi_t = 2 nu psi_ss``, and
    ``psi = offset + exp(-2 nu k^2 t) cos(k s)`` with ``k = 2 pi mode`` (``offset > 1``).
    """
    k = 2 * math.pi * mode
    e = math.exp(-2 * nu * k * k * t)
    s = x + y
    return 2 * nu * k * e * torch.sin(k * s) / (offset + e * torch.cos(k * s))


def fourier_interpolate(u: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """The trigonometric interpolant of periodic node values at arbitrary points.

    ``u (B, n, n)`` on the nodes ``(i / n, j / n)`` of the periodic unit square, ``points
    (B, P, 2)`` or ``(P, 2)`` -> ``(B, P)`` (the Nyquist mode of an even ``n`` as a cosine, so
    the interpolant is real). Exact for the pseudo-spectral solution between its nodes.
    """
    batch, n = u.shape[0], u.shape[-1]
    if points.ndim == 2:
        points = points.expand(batch, *points.shape)
    coeffs = torch.fft.fft2(u) / (n * n)
    k = torch.fft.fftfreq(n, 1.0 / n, device=u.device).to(u.dtype)

    def basis(x: torch.Tensor) -> torch.Tensor:
        e = torch.exp(2j * torch.pi * x[..., None].to(u.dtype) * k)
        if n % 2 == 0:
            e[..., n // 2] = torch.cos(torch.pi * n * x.to(u.dtype))
        return e

    rows = torch.einsum("bpk,bkl->bpl", basis(points[..., 0]), coeffs)
    return (rows * basis(points[..., 1])).sum(-1).real
