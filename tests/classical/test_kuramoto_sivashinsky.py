"""The batched ETDRK4 Kuramoto-Sivashinsky solver against scipy's Radau on the same
pseudo-spectral right-hand side, conservation of the mean, and the contour-integral
coefficients against their closed forms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from pdekit.classical.kuramoto_sivashinsky import (
    etdrk4_coefficients,
    ks_initial_condition,
    ks_rhs,
    solve_kuramoto_sivashinsky,
)


def _chaotic_states(lengths, nus, seed=0):
    """States after a burn-in of 40 s (the chaotic regime), one per (length, nu)."""
    rng = np.random.default_rng(seed)
    u0 = np.stack([ks_initial_condition(128, L, rng) for L in lengths])
    out = solve_kuramoto_sivashinsky(torch.tensor(u0), length=torch.tensor(lengths),
                                     nu=torch.tensor(nus), dt=0.2, frames=1, burn_in=200)
    return out[:, 0].numpy()


@pytest.fixture(scope="module")
def radau_reference():
    lengths, nus = [64.0, 58.5], [1.0, 0.7]
    states = _chaotic_states(lengths, nus)
    times = np.linspace(0.0, 2.0, 11)
    reference = []
    for u, L, nu in zip(states, lengths, nus, strict=True):
        sol = solve_ivp(ks_rhs, (0.0, 2.0), u, method="Radau", t_eval=times, rtol=1e-11,
                        atol=1e-11, args=(L, nu))
        assert sol.success
        reference.append(sol.y.T)
    return states, lengths, nus, np.stack(reference)


def test_etdrk4_matches_radau(radau_reference, device, dtype):
    states, lengths, nus, reference = radau_reference
    u0 = torch.tensor(states, dtype=dtype, device=device)
    out = solve_kuramoto_sivashinsky(u0, length=torch.tensor(lengths), nu=torch.tensor(nus),
                                     dt=0.2, frames=11, substeps=16)
    assert out.shape == (2, 11, 128) and out.dtype == dtype and out.device == u0.device
    error = np.abs(out.cpu().double().numpy() - reference).max() / np.abs(reference).max()
    assert error < (1e-7 if dtype == torch.float64 else 2e-5)


def test_fourth_order_in_time(radau_reference):
    states, lengths, nus, reference = radau_reference
    errors = []
    for substeps in (4, 8):
        out = solve_kuramoto_sivashinsky(torch.tensor(states), length=torch.tensor(lengths),
                                         nu=torch.tensor(nus), dt=0.2, frames=11, substeps=substeps)
        errors.append(np.abs(out.numpy() - reference).max())
    # order > 3 (2^4 = 16 asymptotically; stiff order reduction keeps it near 11 here)
    assert errors[0] / errors[1] > 8


def test_mean_is_conserved(device, dtype):
    rng = np.random.default_rng(3)
    u0 = torch.tensor(np.stack([ks_initial_condition(256, 64.0, rng) + 0.3 * i for i in range(3)]),
                      dtype=dtype, device=device)
    out = solve_kuramoto_sivashinsky(u0, length=64.0, dt=0.2, frames=50, burn_in=50)
    means = out.mean(-1)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(means, u0.mean(-1, keepdim=True).expand_as(means), atol=tol, rtol=0)
    assert out.abs().max() > 1.0  # the trajectories went somewhere (KS amplitude ~ 3)


def test_batch_equals_single_trajectories():
    rng = np.random.default_rng(1)
    lengths = torch.tensor([57.6, 64.0, 70.4], dtype=torch.float64)
    dts = torch.tensor([0.18, 0.2, 0.22], dtype=torch.float64)
    u0 = torch.tensor(np.stack([ks_initial_condition(64, float(L), rng) for L in lengths]))
    batched = solve_kuramoto_sivashinsky(u0, length=lengths, dt=dts, frames=5, substeps=4)
    for i in range(3):
        single = solve_kuramoto_sivashinsky(u0[i], length=float(lengths[i]), dt=float(dts[i]),
                                            frames=5, substeps=4)
        torch.testing.assert_close(batched[i], single, rtol=1e-12, atol=1e-12)


def test_contour_coefficients_match_closed_forms():
    # Where the closed forms do not cancel (|z| not small) they are exact.
    linear = torch.tensor([[-50.0, -4.0, -1.5, 0.8, 2.0]], dtype=torch.float64)
    h = torch.tensor([0.5], dtype=torch.float64)
    E, E2, Q, f1, f2, f3 = etdrk4_coefficients(linear, h)
    z = h[:, None] * linear
    ez = torch.exp(z)
    torch.testing.assert_close(E, ez)
    torch.testing.assert_close(E2, torch.exp(z / 2))
    torch.testing.assert_close(Q, h * (torch.exp(z / 2) - 1) / z)
    torch.testing.assert_close(f1, h * (-4 - z + ez * (4 - 3 * z + z**2)) / z**3)
    torch.testing.assert_close(f2, h * (2 + z + ez * (-2 + z)) / z**3)
    torch.testing.assert_close(f3, h * (-4 - 3 * z - z**2 + ez * (4 - z)) / z**3)
    # and at z = 0 they tend to the Taylor limits h/2, h/6, h/6, h/6
    _, _, Q, f1, f2, f3 = etdrk4_coefficients(torch.zeros(1, 1, dtype=torch.float64), h)
    for value, limit in ((Q, 0.5), (f1, 1 / 6), (f2, 1 / 6), (f3, 1 / 6)):
        assert abs(float(value) - float(h) * limit) < 1e-14


def test_initial_condition_is_a_sum_of_low_sines():
    u = ks_initial_condition(256, 64.0, np.random.default_rng(0))
    spectrum = np.abs(np.fft.rfft(u))
    assert abs(u.mean()) < 1e-12
    assert spectrum[3:].max() < 1e-10 * spectrum[1:3].max()  # only l = 1, 2


def test_bad_inputs_are_refused():
    u0 = torch.zeros(2, 32, dtype=torch.float64)
    with pytest.raises(ValueError, match="length"):
        solve_kuramoto_sivashinsky(u0, length=[1.0, 2.0, 3.0], dt=0.1, frames=2)
    with pytest.raises(ValueError, match="dt"):
        solve_kuramoto_sivashinsky(u0, length=10.0, dt=-0.1, frames=2)
    with pytest.raises(ValueError, match="NaN"):
        solve_kuramoto_sivashinsky(u0 * float("nan"), length=10.0, dt=0.1, frames=2)
