import numpy as np
import pytest
import torch

from pdekit.linalg import SolveStatus, StencilOperator, aslinearoperator, sor
from tests.linalg.problems import make_problem
from tests.linalg.reference import sor_loops


@pytest.mark.parametrize("name", ["poisson2d", "poisson3d-obstacles-mixed", "darcy2d"])
@pytest.mark.parametrize("omega", [1.0, 1.5])
def test_natural_ordering_matches_plain_loops(name, omega):
    A, b = make_problem(name)
    S = A.to_scipy().toarray()
    expected = sor_loops(S, b.numpy().ravel(), omega, 1e-6, 5000)
    res = sor(A, b, omega, rtol=1e-6, ordering="natural")
    assert res.status is SolveStatus.CONVERGED
    assert res.iterations == expected
    # the same on the CSR form
    assert sor(A.to_scipy(), b.reshape(-1), omega, rtol=1e-6).iterations == expected


@pytest.mark.parametrize("name", ["poisson2d", "poisson3d-obstacles-mixed", "darcy2d"])
def test_red_black_ordering_matches_plain_loops(name):
    A, b = make_problem(name)
    red = A.red_mask().numpy().ravel()
    order = np.concatenate([np.flatnonzero(red), np.flatnonzero(~red)])
    expected = sor_loops(A.to_scipy().toarray(), b.numpy().ravel(), 1.3, 1e-6, 5000, order=order)
    assert sor(A, b, 1.3, rtol=1e-6).iterations == expected


def test_weighted_jacobi(dtype, device):
    A, b = make_problem("poisson2d", dtype, device)
    res = sor(A, b, 0.9, rtol=1e-3, ordering="jacobi")
    assert res.status is SolveStatus.CONVERGED
    x = res.x.double().cpu().numpy().ravel()
    S = A.to_scipy().astype(np.float64)
    b64 = b.double().cpu().numpy().ravel()
    assert np.linalg.norm(S @ x - b64) <= 1e-3 * np.linalg.norm(b64)


def test_gauss_seidel_converges_faster_than_jacobi_and_sor_faster_still():
    A, b = make_problem("poisson2d")
    jac = sor(A, b, 1.0, rtol=1e-6, ordering="jacobi").iterations
    gs = sor(A, b, 1.0, rtol=1e-6, ordering="natural").iterations
    best = sor(A, b, 1.75, rtol=1e-6, ordering="natural").iterations
    assert best < gs < jac
    # classical theory for the model problem: Gauss-Seidel needs about half Jacobi's sweeps
    assert gs == pytest.approx(jac / 2, rel=0.1)


def test_batched_sor_equals_individual(dtype):
    A, b = make_problem("darcy2d", dtype, batch=(3,))
    b[1] *= 100
    batched = sor(A, b, 1.4, rtol=1e-4)
    for i in range(3):
        single = sor(A, b[i], 1.4, rtol=1e-4)
        assert int(batched.member_iterations[i]) == single.iterations
        torch.testing.assert_close(batched.x[i], single.x)


def test_omega_and_ordering_errors():
    A, b = make_problem("poisson2d")
    for omega in (0.0, 2.0, -1.0):
        with pytest.raises(ValueError, match="omega"):
            sor(A, b, omega)
    with pytest.raises(ValueError, match="ordering"):
        sor(A, b, 1.0, ordering="diagonal")
    with pytest.raises(ValueError, match="red-black"):
        sor(aslinearoperator(A.to_scipy()), b.reshape(-1), 1.0, ordering="red-black")


def test_divergence_is_reported():
    # SOR diverges on this symmetric indefinite matrix
    M = np.array([[1.0, 3.0], [3.0, 1.0]])
    res = sor(M, torch.ones(2, dtype=torch.float64), 1.0, rtol=1e-8, maxiter=100)
    assert res.status is SolveStatus.DIVERGED


def test_maxiter_status():
    A, b = make_problem("poisson3d")
    res = sor(StencilOperator(A.grid_shape), b, 1.0, rtol=1e-12, maxiter=5)
    assert res.status is SolveStatus.MAXITER and res.iterations == 5
