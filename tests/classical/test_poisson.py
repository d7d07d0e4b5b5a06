import numpy as np
import pytest
import torch

from pdekit.classical import poisson
from pdekit.classical.elliptic import SolveError, solve_elliptic

CASES = [
    ("2d-dirichlet", "dirichlet", 2, (15, 31, 63)),
    ("2d-neumann", "neumann", 2, (16, 32, 64)),
    ("2d-mixed", [("dirichlet", "neumann"), ("neumann", "dirichlet")], 2, (15, 31, 63)),
    ("3d-mixed", [("dirichlet", "neumann"), "dirichlet", "neumann"], 3, (8, 16, 32)),
]


@pytest.mark.parametrize("name, bc, ndim, sizes", CASES, ids=[c[0] for c in CASES])
def test_second_order_convergence_on_manufactured_solutions(name, bc, ndim, sizes):
    errors, spacings = [], []
    for n in sizes:
        shape = (n,) * ndim
        u, f = poisson.manufactured_solution(shape, bc)
        solution = poisson.solve(poisson.operator(shape, bc=bc), f, rtol=1e-12)
        if solution.projected:  # pure Neumann: compare up to the constant
            u = u - u.mean()
        errors.append(np.sqrt(np.mean((solution.u.numpy() - u) ** 2)))
        spacings.append(max(poisson.grid_spacing(shape, bc)))
    e, h = np.array(errors), np.array(spacings)
    orders = np.log(e[:-1] / e[1:]) / np.log(h[:-1] / h[1:])
    assert np.all(np.abs(orders - 2) <= 0.1), orders


def test_grid_geometry():
    assert poisson.grid_spacing((9,), "dirichlet") == (0.1,)
    assert poisson.grid_spacing((10,), "neumann") == (0.1,)
    assert poisson.grid_spacing((10,), [("dirichlet", "neumann")])[0] == pytest.approx(1 / 10.5)
    x = poisson.grid_coordinates((10,), "neumann")[0]
    np.testing.assert_allclose(x, (np.arange(10) + 0.5) / 10)
    A = poisson.assemble_matrix((4, 5))
    np.testing.assert_allclose(A.diagonal(), 2 / 0.2**2 + 2 / (1 / 6) ** 2)


def test_random_obstacles_are_reproducible_and_connected():
    a = poisson.random_obstacles((48, 40), np.random.default_rng(3), fraction=0.2)
    b = poisson.random_obstacles((48, 40), np.random.default_rng(3), fraction=0.2)
    assert np.array_equal(a, b)
    assert 0.2 <= a.mean() <= 0.45
    A = poisson.operator((48, 40), solid=a)
    assert A.positive_definite  # every fluid cell connects to the anchored face
    with pytest.raises(ValueError, match="fraction"):
        poisson.random_obstacles((8, 8), np.random.default_rng(0), fraction=0.95)
    with pytest.raises(ValueError, match="kinds"):
        poisson.random_obstacles((8, 8), np.random.default_rng(0), kinds=("cone",))


def test_obstacle_solve_has_fluid_pressure_boundaries():
    rng = np.random.default_rng(5)
    shape = (24, 20, 16)
    solid = poisson.random_obstacles(shape, rng, fraction=0.15)
    A = poisson.operator(shape, bc=[("dirichlet", "neumann"), "neumann", "neumann"], solid=solid)
    f = rng.standard_normal(shape)
    solution = poisson.solve(A, f, rtol=1e-10)
    assert solution.relative_residual <= 1e-9
    assert torch.count_nonzero(solution.u[torch.from_numpy(solid)]) == 0


def test_singular_neumann_system_is_projected():
    shape = (20, 18)
    A = poisson.operator(shape, bc="neumann")
    f = np.random.default_rng(0).standard_normal(shape) + 3.0  # not in the range of A
    solution = poisson.solve(A, f, rtol=1e-10)
    assert solution.projected
    assert abs(float(solution.u.mean())) < 1e-12
    projected = torch.from_numpy(f - f.mean())
    assert float(torch.linalg.norm(A @ solution.u - projected)) <= 1e-9 * float(torch.linalg.norm(projected))


def test_enclosed_fluid_pocket_is_projected_on_its_own():
    solid = np.zeros((12, 12), bool)
    solid[3:9, 3:9] = True
    solid[5:7, 5:7] = False  # a pocket with no Dirichlet face
    A = poisson.operator((12, 12), solid=solid)
    f = np.ones((12, 12))
    solution = poisson.solve(A, f)
    assert solution.projected
    assert float(solution.u[5:7, 5:7].abs().max()) < 1e-12  # zero-mean on the pocket: zero
    assert float(solution.u[0:2].abs().max()) > 0


def test_unconverged_solve_is_an_error():
    A = poisson.operator((32, 32))
    f = torch.ones(32, 32, dtype=torch.float64)
    with pytest.raises(SolveError, match="maxiter"):
        solve_elliptic(A, f, rtol=1e-12, method="cg", maxiter=5)
    with pytest.raises(ValueError, match="method"):
        solve_elliptic(A, f, method="lu")
