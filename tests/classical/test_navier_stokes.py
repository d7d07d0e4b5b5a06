"""The pseudo-spectral 2D Navier-Stokes vorticity solver: the decaying Taylor-Green vortex,
mean vorticity conserved, fourth order in time, batch = single trajectories, energy decay."""

import numpy as np
import pytest
import torch

from pdekit.classical.navier_stokes import (
    fno_forcing,
    fno_vorticity_field,
    periodic_gaussian_random_field,
    solve_navier_stokes_2d,
    taylor_green_vorticity,
)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_the_decaying_taylor_green_vortex(dtype):
    nu, n = 1e-3, 32
    w0 = taylor_green_vorticity(n, 0.0, nu, k=2, dtype=dtype)
    sol = solve_navier_stokes_2d(w0, nu=nu, t_end=2.0, nt=5, dt=1e-2)
    assert sol.w.dtype == dtype
    exact = torch.stack([taylor_green_vorticity(n, float(t), nu, k=2, dtype=dtype) for t in sol.t])
    tol = 1e-10 if dtype == torch.float64 else 2e-4
    torch.testing.assert_close(sol.w[0], exact, rtol=0, atol=tol * float(exact.abs().max()))
    assert float(exact[-1].abs().max()) < 0.6 * float(exact[0].abs().max())  # it really decays


def _grf(batch=3, n=32, seed=0):
    return torch.from_numpy(periodic_gaussian_random_field(n, np.random.default_rng(seed), batch=batch)) + 0.7


def test_mean_vorticity_is_conserved_and_energy_decays():
    w0 = _grf()
    sol = solve_navier_stokes_2d(w0, nu=1e-3, t_end=2.0, nt=11)
    means = sol.w.mean(dim=(-1, -2))
    torch.testing.assert_close(means, torch.full_like(means, 0.7) + (w0.mean(dim=(-1, -2)) - 0.7)[:, None],
                               rtol=0, atol=1e-12)
    enstrophy = sol.w.var(dim=(-1, -2))
    assert bool((enstrophy[:, 1:] <= enstrophy[:, :-1] * (1 + 1e-9)).all())


def test_fourth_order_in_time_and_batch_equals_single():
    w0 = _grf(batch=2, n=32, seed=1) * 4.0
    run = dict(nu=1e-4, t_end=1.0, nt=3)
    reference = solve_navier_stokes_2d(w0, dt=1.25e-3, **run).w[:, -1]
    errors = [float((solve_navier_stokes_2d(w0, dt=dt, **run).w[:, -1] - reference).abs().max())
              for dt in (2e-2, 1e-2)]
    assert errors[0] / errors[1] > 10.0  # ~16 for fourth order
    single = solve_navier_stokes_2d(w0[1], dt=1e-2, **run).w[0]
    torch.testing.assert_close(solve_navier_stokes_2d(w0, dt=1e-2, **run).w[1], single, rtol=0, atol=1e-12)


def test_gaussian_random_field_is_seeded_smooth_and_normalised():
    a = periodic_gaussian_random_field(64, np.random.default_rng(3), batch=2)
    b = periodic_gaussian_random_field(64, np.random.default_rng(3), batch=2)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a.std(axis=(1, 2)), 1.0)
    np.testing.assert_allclose(a.mean(axis=(1, 2)), 0.0, atol=1e-12)
    spectrum = np.abs(np.fft.fft2(a[0]))
    assert spectrum[20:44, 20:44].max() < 1e-8 * spectrum.max()  # length scale 0.8: smooth


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="w0"):
        solve_navier_stokes_2d(torch.zeros(2, 8, 6))
    with pytest.raises(ValueError, match="NaN"):
        solve_navier_stokes_2d(torch.full((8, 8), float("nan")))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_steady_forcing_drives_a_single_mode_to_its_exact_balance(dtype):
    # w = A(t) (sin + cos)(2 pi (x + y)) depends on x + y only, so its advection vanishes and
    # A' = -nu |k|^2 A + 0.1 with |k|^2 = 8 pi^2: A(t) = A_inf (1 - exp(-nu |k|^2 t)).
    n, nu = 16, 1e-2
    decay = nu * 8 * np.pi**2
    sol = solve_navier_stokes_2d(torch.zeros(n, n, dtype=dtype), nu=nu, t_end=2.0, nt=5,
                                 forcing=fno_forcing(n, dtype=dtype))
    shape = fno_forcing(n, amplitude=1.0, dtype=dtype)
    exact = torch.stack([0.1 / decay * (1 - np.exp(-decay * float(t))) * shape for t in sol.t])
    tol = 1e-12 if dtype == torch.float64 else 1e-6
    torch.testing.assert_close(sol.w[0], exact, rtol=0, atol=tol)
    assert float(sol.w[0, -1].abs().max()) > 0.1  # it really grew


def test_fno_vorticity_field_has_the_benchmark_covariance():
    fields = fno_vorticity_field(32, np.random.default_rng(0), batch=400)
    again = fno_vorticity_field(32, np.random.default_rng(0), batch=400)
    np.testing.assert_array_equal(fields[:3], again[:3])
    np.testing.assert_allclose(fields.mean(axis=(1, 2)), 0.0, atol=1e-12)
    # variance of 7^(3/2) (-Laplacian + 49)^(-2.5): sum over k != 0 of 2 * 7^3 (4 pi^2 |k|^2 + 49)^(-2.5)
    k = np.fft.fftfreq(32, d=1 / 32)
    k2 = k[:, None] ** 2 + k[None, :] ** 2
    terms = 2 * 7.0**3 * (4 * np.pi**2 * k2 + 49) ** -2.5
    terms[0, 0] = 0
    assert fields.var() == pytest.approx(terms.sum(), rel=0.05)


def test_bad_forcing_is_rejected():
    with pytest.raises(ValueError, match="forcing"):
        solve_navier_stokes_2d(torch.zeros(8, 8), forcing=torch.zeros(6, 6))
