"""The 2D Burgers solver against the Cole-Hopf exact solution, under refinement, and batched."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pdekit.classical.burgers2d import burgers2d_exact, burgers2d_initial_condition, solve_burgers2d


def _grid(n: int, dtype):
    x = torch.arange(n, dtype=dtype) / n
    return torch.meshgrid(x, x, indexing="ij")


@pytest.mark.parametrize("nu", [0.02, 0.05])
def test_matches_cole_hopf(nu, dtype, device):
    X, Y = (g.to(device) for g in _grid(48, dtype))
    u0 = burgers2d_exact(X, Y, 0.0, nu=nu)[None]
    u = solve_burgers2d(u0, nu=nu, t_end=0.3, frames=4)
    assert u.shape == (1, 4, 48, 48) and u.dtype == dtype
    for j, t in enumerate((0.0, 0.1, 0.2, 0.3)):
        exact = burgers2d_exact(X, Y, t, nu=nu)
        error = float((u[0, j] - exact).abs().max() / exact.abs().max())
        assert error < (2e-6 if dtype == torch.float64 else 1e-5)  # RK4 at the default CFL


def test_fourth_order_in_time():
    nu = 0.05
    X, Y = _grid(48, torch.float64)
    exact = burgers2d_exact(X, Y, 0.2, nu=nu)
    errors = []
    for cfl in (1.6, 0.8, 0.4, 0.2):
        u = solve_burgers2d(burgers2d_exact(X, Y, 0.0, nu=nu)[None], nu=nu, t_end=0.2, frames=2, cfl=cfl)
        errors.append(float((u[0, -1] - exact).abs().max()))
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert (orders > 2.8).all(), orders  # fourth order, pre-asymptotic at the coarsest step


def test_batch_equals_single_and_decays():
    rng = np.random.default_rng(1)
    u0 = torch.tensor(np.stack([burgers2d_initial_condition(32, rng) for _ in range(3)]))
    assert torch.allclose(u0.abs().amax(dim=(1, 2)), torch.ones(3, dtype=u0.dtype))
    nu = torch.tensor([0.01, 0.02, 0.03], dtype=u0.dtype)
    together = solve_burgers2d(u0, nu=nu, t_end=0.2, frames=3)
    alone = solve_burgers2d(u0[1:2], nu=0.02, t_end=0.2, frames=3)
    # substeps follow the batch's max |u0| (1 for every sample): the same steps, the same answer
    torch.testing.assert_close(together[1:2], alone, rtol=1e-10, atol=1e-12)
    assert (together[:, -1].abs().amax(dim=(1, 2)) < 1).all()  # maximum principle
    torch.testing.assert_close(together.mean(dim=(2, 3)), u0.mean(dim=(1, 2))[:, None].expand(3, 3),
                               rtol=0, atol=1e-12)  # the mean is conserved


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="u0"):
        solve_burgers2d(torch.zeros(4, 4), nu=0.1, t_end=1.0, frames=2)
    with pytest.raises(ValueError, match="nu"):
        solve_burgers2d(torch.zeros(1, 4, 4), nu=-0.1, t_end=1.0, frames=2)
