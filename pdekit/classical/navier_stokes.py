"""2D incompressible Navier-Stokes in vorticity form on the periodic unit square: a batched
pseudo-spectral solver.

    w_t + u . grad w = nu Laplacian w + f,   u = (psi_y, -psi_x),   -Laplacian psi = w,

on ``[0, 1)^2``, unforced by default (the PI-HC-MoE setup: Chalapathi et al., "Scaling
physics-informed hard constraints with mixture-of-experts", ICLR 2024, section 5.2: ``nu =
1e-4``, Gaussian random field initial vorticity, ``T = 5`` s) or with the steady forcing of the
FNO benchmark (Li et al., "Fourier neural operator for parametric PDEs", ICLR 2021, section
5.3: ``f = 0.1 (sin 2 pi (x + y) + cos 2 pi (x + y))``, initial vorticity drawn from
``N(0, 7^(3/2) (-Laplacian + 49 I)^(-2.5))``, :func:`fno_vorticity_field`).

Discretisation: Fourier collocation on ``n x n`` points (real FFTs), the advection term in
conservative form ``div(u w)`` with the 2/3 dealiasing rule, and the classical fourth-order
Runge-Kutta scheme with an integrating factor for the viscous term (exact in time for the
linear part). In conservative form the mean vorticity is conserved to round-off. A whole batch
of trajectories is advanced together (``torch``, any device, float32 or float64).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["NavierStokesSolution", "fno_forcing", "fno_vorticity_field", "periodic_gaussian_random_field",
           "solve_navier_stokes_2d", "taylor_green_vorticity"]


@dataclass
class NavierStokesSolution:
    """``w``: (batch, nt, n, n) vorticity at times ``t`` (``w[:, :, i, j]`` at ``x_i, y_j``);
    ``steps``: RK4 steps taken; ``dt``: their size."""

    w: torch.Tensor
    t: torch.Tensor
    steps: int
    dt: float


def _wavenumbers(n: int, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    kx = torch.fft.fftfreq(n, d=1.0 / n, device=device, dtype=dtype)[:, None] * 2 * math.pi
    ky = torch.fft.rfftfreq(n, d=1.0 / n, device=device, dtype=dtype)[None, :] * 2 * math.pi
    return kx, ky


def periodic_gaussian_random_field(n: int, rng: np.random.Generator, *, batch: int = 1,
                                   length_scale: float = 0.8, std: float = 1.0) -> np.ndarray:
    """Zero-mean Gaussian random fields on the periodic ``n x n`` unit grid with the
    squared-exponential spectrum ``exp(-(l |k|)^2 / 2)`` over integer wavenumbers ``k`` (the
    covariance ``exp(-d^2 / (2 l^2))`` in the angle ``2 pi x``), each scaled to standard
    deviation ``std``. Returns (batch, n, n) float64."""
    if n < 4 or length_scale <= 0 or std <= 0:
        raise ValueError("periodic_gaussian_random_field: need n >= 4, length_scale > 0, std > 0")
    k = np.fft.fftfreq(n, d=1.0 / n)
    k2 = k[:, None] ** 2 + k[None, :] ** 2
    amplitude = np.exp(-0.25 * length_scale**2 * k2)
    amplitude[0, 0] = 0.0
    noise = rng.standard_normal((batch, n, n)) + 1j * rng.standard_normal((batch, n, n))
    field = np.fft.ifft2(noise * amplitude).real
    field -= field.mean(axis=(1, 2), keepdims=True)
    return field * (std / field.std(axis=(1, 2), keepdims=True))


def fno_vorticity_field(n: int, rng: np.random.Generator, *, batch: int = 1, alpha: float = 2.5,
                        tau: float = 7.0) -> np.ndarray:
    """Initial vorticity of the FNO Navier-Stokes benchmark (Li et al., ICLR 2021, section 5.3):
    periodic Gaussian random fields ``N(0, tau^(2 alpha - 2) (-Laplacian + tau^2 I)^(-alpha))`` on
    the ``n x n`` unit grid, ``alpha = 2.5``, ``tau = 7`` (the covariance ``7^(3/2) (-Laplacian +
    49 I)^(-2.5)``), without the mean mode.

    Each Fourier mode ``k`` gets an independent complex normal coefficient (real and imaginary
    parts standard normal) times ``sqrt(2) tau^(alpha - 1) (4 pi^2 |k|^2 + tau^2)^(-alpha / 2)``,
    and the field is the real part of the inverse transform, as in the FNO data generator.
    Unlike :func:`periodic_gaussian_random_field` the amplitude is not normalised per sample.
    Returns (batch, n, n) float64.
    """
    if n < 4 or alpha <= 1 or tau <= 0:
        raise ValueError("fno_vorticity_field: need n >= 4, alpha > 1 and tau > 0")
    k = np.fft.fftfreq(n, d=1.0 / n)
    k2 = k[:, None] ** 2 + k[None, :] ** 2
    amplitude = math.sqrt(2.0) * tau ** (alpha - 1.0) * (4 * math.pi**2 * k2 + tau**2) ** (-alpha / 2)
    amplitude[0, 0] = 0.0
    noise = rng.standard_normal((batch, n, n)) + 1j * rng.standard_normal((batch, n, n))
    return np.fft.ifft2(noise * amplitude, norm="forward").real


def fno_forcing(n: int, amplitude: float = 0.1, dtype=torch.float64) -> torch.Tensor:
    """The steady forcing of the FNO benchmark, ``f = amplitude (sin 2 pi (x + y) + cos 2 pi (x +
    y))`` on the ``n x n`` unit grid (``f[i, j]`` at ``x_i, y_j``)."""
    x = torch.arange(n, dtype=dtype) / n
    phase = 2 * math.pi * (x[:, None] + x[None, :])
    return amplitude * (torch.sin(phase) + torch.cos(phase))


def taylor_green_vorticity(n: int, t: float, nu: float, k: int = 1, dtype=torch.float64) -> torch.Tensor:
    """The decaying Taylor-Green vortex ``w = 2 (2 pi k) cos(2 pi k x) cos(2 pi k y)
    exp(-2 nu (2 pi k)^2 t)``, an exact solution (its advection term vanishes)."""
    x = torch.arange(n, dtype=dtype) / n
    a = 2 * math.pi * k
    return (2 * a * torch.cos(a * x)[:, None] * torch.cos(a * x)[None, :]
            * math.exp(-2 * nu * a * a * t))


def solve_navier_stokes_2d(w0, *, nu: float = 1e-4, t_end: float = 5.0, nt: int = 64,
                           dt: float | None = None, cfl: float = 0.5,
                           forcing=None) -> NavierStokesSolution:
    """Advance a batch of vorticity fields with the pseudo-spectral IF-RK4 scheme (module doc).

    Parameters
    ----------
    w0 : Tensor or array (batch, n, n) or (n, n)
        Initial vorticity on the periodic unit grid (dtype and device followed).
    nu : float
        Kinematic viscosity (``1e-4``: Reynolds number 10^4 in the paper's units).
    t_end, nt : float, int
        Final time and the number of stored times ``linspace(0, t_end, nt)``.
    dt : float, optional
        Time step (rounded down so each stored interval is a whole number of steps); default
        ``cfl * h / max|u0|`` with ``h = 1/n``, at most ``1e-2``.
    forcing : Tensor or array (n, n) or (batch, n, n), optional
        A steady source ``f`` of vorticity (e.g. :func:`fno_forcing`); default none.

    Returns
    -------
    NavierStokesSolution
    """
    w = torch.as_tensor(w0)
    if not w.is_floating_point():
        w = w.double()
    if w.dim() == 2:
        w = w[None]
    if w.dim() != 3 or w.shape[1] != w.shape[2] or w.shape[1] < 4 or w.shape[1] % 2:
        raise ValueError(f"solve_navier_stokes_2d: `w0` must be (batch, n, n) with even n >= 4, "
                         f"got shape {tuple(w.shape)}")
    if not torch.isfinite(w).all():
        raise ValueError("solve_navier_stokes_2d: `w0` holds NaN or Inf")
    if nu < 0 or t_end <= 0 or nt < 2:
        raise ValueError("solve_navier_stokes_2d: need nu >= 0, t_end > 0 and nt >= 2")
    n = w.shape[-1]
    kx, ky = _wavenumbers(n, w.device, w.dtype)
    k2 = kx**2 + ky**2
    inverse_laplacian = 1.0 / torch.where(k2 == 0, torch.ones_like(k2), k2)
    inverse_laplacian[0, 0] = 0.0
    cut = (2.0 / 3.0) * (n // 2) * 2 * math.pi
    dealias = ((kx.abs() < cut) & (ky.abs() < cut)).to(w.dtype)

    def velocity(w_hat):
        psi_hat = w_hat * inverse_laplacian
        u = torch.fft.irfft2(1j * ky * psi_hat, s=(n, n))
        v = torch.fft.irfft2(-1j * kx * psi_hat, s=(n, n))
        return u, v

    def advection(w_hat):  # -div(u w), dealiased
        u, v = velocity(w_hat)
        w_phys = torch.fft.irfft2(w_hat, s=(n, n))
        flux = 1j * kx * torch.fft.rfft2(u * w_phys) + 1j * ky * torch.fft.rfft2(v * w_phys)
        return -dealias * flux

    source = None
    if forcing is not None:
        f = torch.as_tensor(forcing, dtype=w.dtype, device=w.device)
        if f.shape[-2:] != (n, n) or f.dim() not in (2, 3):
            raise ValueError(f"solve_navier_stokes_2d: `forcing` must be (n, n) or (batch, n, n) with "
                             f"n = {n}, got shape {tuple(f.shape)}")
        if not torch.isfinite(f).all():
            raise ValueError("solve_navier_stokes_2d: `forcing` holds NaN or Inf")
        source = dealias * torch.fft.rfft2(f)

    def tendency(w_hat):
        return advection(w_hat) if source is None else advection(w_hat) + source

    interval = t_end / (nt - 1)
    if dt is None:
        u, v = velocity(torch.fft.rfft2(w))
        speed = float(torch.sqrt(u**2 + v**2).max())
        dt = min(1e-2, cfl / n / max(speed, 1e-12))
    substeps = max(1, math.ceil(interval / dt - 1e-9))
    h = interval / substeps
    half = torch.exp(-nu * k2 * h / 2)
    full = half * half
    w_hat = torch.fft.rfft2(w)
    out = torch.empty(w.shape[0], nt, n, n, dtype=w.dtype, device=w.device)
    out[:, 0] = w
    for i in range(1, nt):
        for _ in range(substeps):
            a = tendency(w_hat)
            b = tendency(half * (w_hat + h / 2 * a))
            c = tendency(half * w_hat + h / 2 * b)
            d = tendency(full * w_hat + h * half * c)
            w_hat = full * w_hat + h / 6 * (full * a + 2 * half * (b + c) + d)
        out[:, i] = torch.fft.irfft2(w_hat, s=(n, n))
        if not torch.isfinite(out[:, i]).all():
            raise RuntimeError(f"solve_navier_stokes_2d: the solution blew up before t = {i * interval:.3g}; "
                               "use a smaller `dt`")
    t = torch.linspace(0.0, t_end, nt, dtype=w.dtype, device=w.device)
    return NavierStokesSolution(w=out, t=t, steps=substeps * (nt - 1), dt=h)
