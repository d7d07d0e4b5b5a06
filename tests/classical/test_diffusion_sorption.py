"""The diffusion-sorption reference solver: agreement with an independent stiff integrator of
PDEBench's semi-discretisation, convergence under refinement in time and space, batching."""

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from pdekit.classical.diffusion_sorption import retardation, solve_diffusion_sorption


def _pdebench_ode(nx: int, D: float = 5e-4):
    dx = 1.0 / nx

    def rhs(t, c):
        lap = np.empty_like(c)
        lap[1:-1] = c[:-2] - 2 * c[1:-1] + c[2:]
        lap[0] = 1.0 - 2 * c[0] + c[1]
        lap[-1] = c[-2] - 2 * c[-1] + D * (c[-2] - c[-1]) / dx
        return D / dx**2 / retardation(c) * lap

    return rhs


def test_matches_radau_on_the_pdebench_semidiscretisation():
    nx = 48
    ref = solve_ivp(_pdebench_ode(nx), (0, 500), np.full(nx, 0.1), t_eval=np.linspace(0, 500, 101),
                    method="Radau", rtol=1e-10, atol=1e-12).y.T
    ours = solve_diffusion_sorption(0.1, nx=nx, substeps=40).u[0]
    np.testing.assert_allclose(ours, ref, atol=2e-4, rtol=0)
    assert ours[1:, 0].min() > 0.5 and ours[-1, 0] > 0.9  # inflow from the left boundary


def test_converges_in_time():
    run = dict(nx=32, t_end=100.0, nt=11)
    reference = solve_diffusion_sorption(0.08, substeps=160, **run).u[0]
    errors = [np.abs(solve_diffusion_sorption(0.08, substeps=s, **run).u[0] - reference).max()
              for s in (5, 10, 20)]
    assert errors[0] > errors[1] > errors[2]
    assert errors[0] / errors[2] > 5.0  # better than first order over two halvings


def test_converges_in_space():
    def coarse(nx, fine):
        u = solve_diffusion_sorption(0.12, nx=fine, t_end=100.0, nt=11, substeps=20).u[0]
        return u.reshape(u.shape[0], nx, fine // nx).mean(axis=-1)

    reference = coarse(32, 512)
    errors = [np.abs(coarse(32, n) - reference).max() for n in (32, 64, 128)]
    assert errors[0] > errors[1] > errors[2]
    assert errors[0] / errors[2] > 3.0


def test_batch_equals_single_trajectories():
    values = np.array([0.02, 0.11, 0.19])
    batch = solve_diffusion_sorption(values, nx=32, nt=11, t_end=100.0, substeps=5).u
    for i, v in enumerate(values):
        single = solve_diffusion_sorption(v, nx=32, nt=11, t_end=100.0, substeps=5).u[0]
        np.testing.assert_allclose(batch[i], single, rtol=0, atol=1e-12)


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="u0"):
        solve_diffusion_sorption(np.zeros((2, 5)), nx=8)
    with pytest.raises(ValueError, match="nx"):
        solve_diffusion_sorption(0.1, nx=2)
