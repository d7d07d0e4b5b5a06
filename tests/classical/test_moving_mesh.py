"""The parabolic Monge-Ampere mesher against the exact equidistributing map of a separable
monitor, mesh-quality measures and interpolation between meshes and grids."""

from __future__ import annotations

import math

import pytest
import torch

from pdekit.classical.moving_mesh import (
    equidistribution_spread,
    gradient_monitor,
    interpolate_from_mesh,
    interpolate_grid,
    solve_monge_ampere,
    tangled_cells,
    uniform_mesh,
)

A, C = 0.8, 30.0


def _m1(x):
    return 1 + A * C / 3 * torch.exp(-C * (x - 0.4) ** 2)


def _cdf(x):
    erf = torch.erf(math.sqrt(C) * (x - 0.4)) + math.erf(math.sqrt(C) * 0.4)
    return x + A * C / 3 * math.sqrt(math.pi / C) / 2 * erf


def _exact_nodes(n, dtype):
    """The 1D equidistributing nodes F(x_i) = (i / (n - 1)) F(1), by bisection."""
    target = torch.linspace(0, 1, n, dtype=dtype) * _cdf(torch.tensor(1.0, dtype=dtype))
    lo, hi = torch.zeros(n, dtype=dtype), torch.ones(n, dtype=dtype)
    for _ in range(60):
        mid = (lo + hi) / 2
        below = _cdf(mid) < target
        lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
    return lo


def test_separable_monitor_gives_the_exact_map(dtype):
    g = torch.linspace(0, 1, 129, dtype=dtype)
    monitor = (_m1(g)[:, None] * _m1(g)[None, :])[None]
    errors = []
    for n in (17, 33):
        result = solve_monge_ampere(monitor, n, rtol=1e-3, maxiter=1500)
        exact = _exact_nodes(n, torch.float64)
        assert result.mesh.dtype == dtype and result.mesh.shape == (1, n, n, 2)
        errors.append(float((result.mesh[0, :, 5, 0].double() - exact).abs().max()))
        torch.testing.assert_close(result.mesh[0, 0, :, 0], torch.zeros(n, dtype=dtype))  # on the wall
        torch.testing.assert_close(result.mesh[0, :, -1, 1], torch.ones(n, dtype=dtype))
        assert int(tangled_cells(result.mesh)) == 0
        spread = float(equidistribution_spread(result.mesh, monitor))
        assert spread < 0.1 * float(equidistribution_spread(uniform_mesh(n, dtype=dtype)[None], monitor))
    assert errors[0] < 0.012 and errors[1] < 0.45 * errors[0]  # converges under refinement


def test_tangled_cells_counts_a_fold():
    mesh = uniform_mesh(5)[None].clone()
    assert int(tangled_cells(mesh)) == 0
    mesh[0, 2, 2] = torch.tensor([0.9, 0.5])  # node pushed past its right neighbour
    assert int(tangled_cells(mesh)) >= 2


def test_interpolation_reproduces_linear_functions(dtype):
    torch.manual_seed(0)
    values = lambda p: 1 + 2 * p[..., 0] - 3 * p[..., 1]  # noqa: E731
    grid = uniform_mesh(9, dtype=dtype)
    points = torch.rand(50, 2, dtype=dtype)
    torch.testing.assert_close(interpolate_grid(values(grid)[None], points)[0], values(points))
    g = torch.linspace(0, 1, 33, dtype=dtype)
    monitor = (_m1(g)[:, None] * _m1(g)[None, :])[None]
    mesh = solve_monge_ampere(monitor, 9, maxiter=300).mesh
    out = interpolate_from_mesh(mesh, values(mesh), points)
    torch.testing.assert_close(out[0], values(points), rtol=1e-5, atol=1e-5)


def test_gradient_monitor():
    g = torch.linspace(0, 1, 17, dtype=torch.float64)
    u = (3 * g[:, None] + 0 * g[None, :])[None]
    torch.testing.assert_close(gradient_monitor(u, alpha=0.5), torch.full_like(u, 3.0))
    with pytest.raises(ValueError, match="monitor"):
        solve_monge_ampere(-torch.ones(1, 4, 4))
