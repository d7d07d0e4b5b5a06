"""The Kuramoto-Sivashinsky equation: a batched pseudo-spectral ETDRK4 solver.

``u_t + u u_x + u_xx + nu u_xxxx = 0`` on a periodic interval ``[0, L)``, written in Fourier
space as ``v_t = L v + N(v)`` with the linear part ``L_k = k^2 - nu k^4`` and the nonlinear part
``N(v) = -(i k / 2) F[(F^-1 v)^2]`` (conservative form, 2/3-rule dealiased). Time stepping is
the exponential time-differencing fourth-order Runge-Kutta scheme of Cox and Matthews (2002)
with the coefficients evaluated by contour integrals (Kassam and Trefethen, "Fourth-order
time-stepping for stiff PDEs", SIAM J. Sci. Comput. 26, 2005, eq. 2.5 and section 3), which
avoids the cancellation of ``(e^z - 1 - z) / z^2``-like terms at small ``z``.

Everything is batched over trajectories: each trajectory has its own domain length, viscosity
and time step (coefficients of shape ``(batch, modes)``), on any device and float dtype.
:func:`ks_rhs` is the same semi-discrete right-hand side in NumPy, for a reference integrator
(scipy's ``solve_ivp(method="Radau")``, as the PDE-Refiner / LPSDA data generator uses).

Initial conditions (:func:`ks_initial_condition`) follow Brandstetter et al. (LPSDA, 2022) and
Lippe et al. (PDE-Refiner, 2023): ``u0(x) = sum_j A_j sin(2 pi l_j x / L + phi_j)`` with 10
terms, ``A_j ~ U(-0.5, 0.5)``, ``phi_j ~ U(0, 2 pi)``, ``l_j`` in ``{1, 2}``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = [
    "etdrk4_coefficients",
    "ks_initial_condition",
    "ks_rhs",
    "ks_wavenumbers",
    "solve_kuramoto_sivashinsky",
]


def ks_wavenumbers(points: int, length: torch.Tensor) -> torch.Tensor:
    """Angular wavenumbers ``2 pi m / L`` of the real FFT, ``m = 0 .. points // 2``.

    ``length`` has shape ``(batch,)``; the result ``(batch, points // 2 + 1)``.
    """
    m = torch.arange(points // 2 + 1, dtype=length.dtype, device=length.device)
    return (2 * math.pi / length)[:, None] * m


def _dealias_mask(points: int, dtype, device) -> torch.Tensor:
    """The 2/3 rule: keep Fourier modes ``|m| < points / 3`` (Orszag 1971)."""
    m = torch.arange(points // 2 + 1, device=device)
    return (m < points / 3).to(dtype)


def etdrk4_coefficients(
    linear: torch.Tensor, h: torch.Tensor, contour_points: int = 32
) -> tuple[torch.Tensor, ...]:
    """ETDRK4 coefficients of a diagonal linear part by contour integrals.

    Kassam and Trefethen (2005), eq. (2.5) with the means over ``contour_points`` points on a
    circle of radius 1 around each ``z = h L_k`` (upper half circle; ``L`` real, so the real
    part of the mean is the integral).

    Parameters
    ----------
    linear : Tensor, shape (batch, modes)
        The real eigenvalues ``L_k`` (float64 recommended: the coefficients are computed in
        the input's precision).
    h : Tensor, shape (batch,)
        The step of each trajectory.

    Returns
    -------
    E, E2, Q, f1, f2, f3 : Tensor, shape (batch, modes)
        ``exp(hL)``, ``exp(hL/2)`` and the weights of the scheme.
    """
    z = h[:, None] * linear
    j = torch.arange(1, contour_points + 1, dtype=linear.dtype, device=linear.device)
    roots = torch.exp(1j * math.pi * (j - 0.5) / contour_points)
    zr = z[..., None] + roots  # (batch, modes, M) complex
    ez = torch.exp(zr)
    ez2 = torch.exp(zr / 2)
    hh = h[:, None]
    Q = hh * ((ez2 - 1) / zr).mean(-1).real
    f1 = hh * ((-4 - zr + ez * (4 - 3 * zr + zr**2)) / zr**3).mean(-1).real
    f2 = hh * ((2 + zr + ez * (-2 + zr)) / zr**3).mean(-1).real
    f3 = hh * ((-4 - 3 * zr - zr**2 + ez * (4 - zr)) / zr**3).mean(-1).real
    return torch.exp(z), torch.exp(z / 2), Q, f1, f2, f3


def _as_batch(value, batch: int, name: str, dtype, device) -> torch.Tensor:
    t = torch.as_tensor(value, dtype=torch.float64, device=device).reshape(-1)
    if t.numel() == 1:
        t = t.expand(batch)
    if t.numel() != batch:
        raise ValueError(
            f"solve_kuramoto_sivashinsky: `{name}` must be a number or have {batch} entries, "
            f"got {t.numel()}"
        )
    if not torch.isfinite(t).all() or (t <= 0).any():
        raise ValueError(f"solve_kuramoto_sivashinsky: `{name}` must be positive and finite")
    return t.contiguous()


def solve_kuramoto_sivashinsky(
    u0: torch.Tensor,
    *,
    length: float | torch.Tensor,
    dt: float | torch.Tensor,
    frames: int,
    nu: float | torch.Tensor = 1.0,
    substeps: int = 8,
    burn_in: int = 0,
    contour_points: int = 32,
) -> torch.Tensor:
    """Integrate the Kuramoto-Sivashinsky equation with ETDRK4, batched over trajectories.

    Parameters
    ----------
    u0 : Tensor, shape (batch, points) or (points,)
        Initial states on the uniform periodic grid ``x_j = j L / points``. The output follows
        its device and dtype (float32 or float64; the FFTs run in that precision, the
        coefficients are computed in float64 and cast).
    length, dt, nu : float or Tensor of shape (batch,)
        Domain length ``L``, time between stored frames, and the fourth-order coefficient
        (``nu = 1`` is the standard equation) of each trajectory.
    frames : int
        Number of stored frames (the first is the state after ``burn_in`` frames).
    substeps : int
        ETDRK4 steps per stored frame (step ``h = dt / substeps``).
    burn_in : int
        Frames integrated and discarded before the first stored one.

    Returns
    -------
    Tensor, shape (batch, frames, points) (or (frames, points) for a single ``u0``)
    """
    if not isinstance(u0, torch.Tensor):
        raise TypeError(f"solve_kuramoto_sivashinsky: `u0` must be a tensor, got {type(u0).__name__}")
    single = u0.ndim == 1
    if single:
        u0 = u0[None]
    if u0.ndim != 2 or u0.shape[-1] < 4:
        raise ValueError("solve_kuramoto_sivashinsky: `u0` must have shape (batch, points), "
                         f"got {tuple(u0.shape)}")
    if u0.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"solve_kuramoto_sivashinsky: `u0` must be float32 or float64, got {u0.dtype}")
    if not torch.isfinite(u0).all():
        raise ValueError("solve_kuramoto_sivashinsky: `u0` contains NaN or Inf")
    if frames < 1 or substeps < 1 or burn_in < 0:
        raise ValueError("solve_kuramoto_sivashinsky: need frames >= 1, substeps >= 1, burn_in >= 0")
    batch, points = u0.shape
    device, dtype = u0.device, u0.dtype
    cdtype = torch.complex64 if dtype == torch.float32 else torch.complex128
    length = _as_batch(length, batch, "length", dtype, device)
    dt = _as_batch(dt, batch, "dt", dtype, device)
    nu = _as_batch(nu, batch, "nu", dtype, device)

    k = ks_wavenumbers(points, length)  # float64 (batch, modes)
    if points % 2 == 0:
        k_odd = k.clone()
        k_odd[:, -1] = 0.0  # the Nyquist mode of an odd derivative is zero
    else:
        k_odd = k
    linear = k**2 - nu[:, None] * k**4
    coefficients = etdrk4_coefficients(linear, dt / substeps, contour_points)
    E, E2, Q, f1, f2, f3 = (c.to(dtype) for c in coefficients)
    g = (-0.5j * k_odd * _dealias_mask(points, torch.float64, device)).to(cdtype)

    def nonlinear(v: torch.Tensor) -> torch.Tensor:
        u = torch.fft.irfft(v, n=points)
        return g * torch.fft.rfft(u * u)

    def step(v: torch.Tensor) -> torch.Tensor:
        Nv = nonlinear(v)
        a = E2 * v + Q * Nv
        Na = nonlinear(a)
        b = E2 * v + Q * Na
        Nb = nonlinear(b)
        c = E2 * a + Q * (2 * Nb - Nv)
        Nc = nonlinear(c)
        return E * v + Nv * f1 + 2 * (Na + Nb) * f2 + Nc * f3

    v = torch.fft.rfft(u0)
    out = torch.empty(batch, frames, points, dtype=dtype, device=device)
    for frame in range(burn_in + frames):
        if frame >= burn_in:
            out[:, frame - burn_in] = torch.fft.irfft(v, n=points)
        if frame == burn_in + frames - 1:
            break
        for _ in range(substeps):
            v = step(v)
    if not torch.isfinite(out).all():
        raise FloatingPointError(
            "solve_kuramoto_sivashinsky: the solution blew up (NaN/Inf); reduce `dt / substeps`"
        )
    return out[0] if single else out


def ks_rhs(t: float, u: np.ndarray, length: float, nu: float = 1.0) -> np.ndarray:
    """The semi-discrete right-hand side ``du/dt`` that :func:`solve_kuramoto_sivashinsky`
    integrates: ``-(u^2/2)_x - u_xx - nu u_xxxx`` by FFT, with the 2/3 rule on the nonlinear
    term. scipy's ``fun(t, y, *args)`` signature (``t`` is unused), for a reference integrator:
    ``scipy.integrate.solve_ivp(ks_rhs, span, u0, method="Radau", args=(L, nu))``; ``u`` has
    shape ``(points,)``.
    """
    points = u.shape[-1]
    m = np.arange(points // 2 + 1)
    k = 2 * np.pi / length * m
    k_odd = k.copy()
    if points % 2 == 0:
        k_odd[-1] = 0.0
    v = np.fft.rfft(u)
    linear = (k**2 - nu * k**4) * v
    nonlinear = -0.5j * k_odd * (m < points / 3) * np.fft.rfft(u * u)
    return np.fft.irfft(linear + nonlinear, n=points)


def ks_initial_condition(
    points: int,
    length: float,
    rng: np.random.Generator,
    *,
    terms: int = 10,
    amplitude: float = 0.5,
    wavenumbers: tuple[int, int] = (1, 2),
) -> np.ndarray:
    """A sum of sines ``sum_j A_j sin(2 pi l_j x / L + phi_j)`` on ``x_j = j L / points``.

    Brandstetter et al. (2022, LPSDA) and Lippe et al. (2023, PDE-Refiner, appendix D):
    ``A_j ~ U(-amplitude, amplitude)``, ``phi_j ~ U(0, 2 pi)``, integer ``l_j`` uniform in
    ``wavenumbers`` (inclusive).
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError("ks_initial_condition: `rng` must be a numpy.random.Generator, "
                        f"got {type(rng).__name__}")
    A = rng.uniform(-amplitude, amplitude, terms)
    phi = rng.uniform(0.0, 2 * np.pi, terms)
    ell = rng.integers(wavenumbers[0], wavenumbers[1] + 1, terms)
    x = np.arange(points) * (length / points)
    return np.sum(A * np.sin(2 * np.pi * ell * x[:, None] / length + phi), axis=-1)
