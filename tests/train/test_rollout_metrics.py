"""PDE-Refiner's rollout metrics against hand computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pdekit.train.rollout import (
    error_spectrum,
    high_correlation_time,
    pearson_correlation,
    rollout,
    spread_and_error,
)


def test_high_correlation_time_by_hand():
    corr = torch.tensor([[1.0, 0.95, 0.85, 0.70, 0.90],
                         [1.0, 0.85, 0.80, 0.60, 0.50]])
    # mean over trajectories first: [1, 0.9, 0.825, 0.65, 0.7]; steps above 0.8: 3, above 0.9
    # and 0.95: 1 (0.9 is not above 0.9); times 0.8 s per step
    times = high_correlation_time(corr, 0.8)
    assert times == pytest.approx({0.8: 2.4, 0.9: 0.8, 0.95: 0.8})
    # averaging per-trajectory times instead would give (4 + 2) / 2 steps = 2.4 s at 0.8, and
    # (2 + 1) / 2 = 1.2 s at 0.9: not the same metric
    assert high_correlation_time(corr[0], 0.8)[0.9] == pytest.approx(1.6)


def test_pearson_correlation_matches_numpy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3, 4, 50)), rng.normal(size=(3, 4, 50))
    b[0, 0] = 2 * a[0, 0] + 1  # correlation 1
    got = pearson_correlation(torch.tensor(a), torch.tensor(b)).numpy()
    want = np.array([[np.corrcoef(a[i, j], b[i, j])[0, 1] for j in range(4)] for i in range(3)])
    np.testing.assert_allclose(got, want, rtol=1e-10)
    assert got[0, 0] == pytest.approx(1.0)


def test_error_spectrum_puts_a_single_sine_at_its_wavenumber():
    x = torch.arange(64, dtype=torch.float64) / 64
    target = torch.sin(2 * np.pi * 2 * x).expand(5, 64)
    pred = target + 0.1 * torch.sin(2 * np.pi * 7 * x)
    err, sig = error_spectrum(pred, target)
    assert err.shape == (33,) and int(err.argmax()) == 7 and int(sig.argmax()) == 2
    # Parseval: |X_k|^2 / N at a single positive wavenumber k is N a^2 / 4
    assert float(err[7]) == pytest.approx(64 * 0.1**2 / 4, rel=1e-10)
    assert float(err.sum() - err[7]) < 1e-20


def test_rollout_of_a_linear_model_and_the_spread():
    def doubling(u, scalars, generator=None):
        return 2 * u[:, -1:]

    u0 = torch.randn(3, 1, 8)
    out = rollout(doubling, u0, None, 4, batch_size=2)
    torch.testing.assert_close(out, torch.stack([2**k * u0[:, 0] for k in range(1, 5)], dim=1))
    samples = torch.stack([torch.zeros(2, 3, 4), 2 * torch.ones(2, 3, 4)])  # mean 1, std sqrt(2)
    spread, error = spread_and_error(samples, torch.zeros(2, 3, 4))
    torch.testing.assert_close(spread, torch.full((2, 3), 2**0.5))
    torch.testing.assert_close(error, torch.ones(2, 3))
