import numpy as np
import pytest
import scipy.sparse.linalg as spla
import torch

from pdekit.linalg import StencilOperator, lanczos
from tests.linalg.problems import make_problem


@pytest.mark.parametrize("name", ["poisson2d", "darcy2d", "poisson3d-obstacles-mixed"])
def test_ritz_values_match_eigsh_at_both_ends(name, dtype, device):
    A, _ = make_problem(name, dtype, device)
    S = A.to_scipy().astype(np.float64)
    largest = np.sort(spla.eigsh(S, k=3, which="LA")[0])
    smallest = np.sort(spla.eigsh(S, k=3, sigma=0, which="LM")[0])
    steps = min(A.n, 160)
    res = lanczos(A, steps, generator=torch.Generator().manual_seed(0))
    tol = 1e-8 if dtype == torch.float64 else 1e-4
    # distinct extreme eigenvalues converge first
    np.testing.assert_allclose(res.ritz_values[-1].item(), largest[-1], rtol=tol)
    np.testing.assert_allclose(res.ritz_values[0].item(), smallest[0], rtol=tol * 10)


def test_ritz_vectors_are_orthonormal_eigenvector_approximations():
    A = StencilOperator((23, 17))  # distinct eigenvalues
    res = lanczos(A, 60, generator=torch.Generator().manual_seed(1))
    Y = res.ritz_vectors.reshape(60, -1)
    torch.testing.assert_close(Y @ Y.T, torch.eye(60, dtype=torch.float64), atol=1e-10, rtol=0)
    # the reported residual norms are the true ones
    AY = A @ res.ritz_vectors
    residual = AY - res.ritz_values.reshape(-1, 1, 1) * res.ritz_vectors
    true = torch.linalg.norm(residual.reshape(60, -1), dim=1)
    torch.testing.assert_close(true, res.residual_norms, atol=1e-9, rtol=1e-6)
    assert float(res.residual_norms[-1]) < 1e-4  # the largest Ritz pair has converged


def test_invariant_subspace_stops_early():
    d = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], dtype=torch.float64)
    v0 = torch.tensor([1.0, 1.0, 0, 0, 0, 0], dtype=torch.float64)
    res = lanczos(torch.diag(d), 5, v0)
    assert res.steps == 2
    torch.testing.assert_close(res.ritz_values, torch.tensor([1.0, 2.0], dtype=torch.float64))


def test_lanczos_errors():
    A = StencilOperator((4, 4))
    with pytest.raises(ValueError, match="num_steps"):
        lanczos(A, 17)
    with pytest.raises(ValueError, match="v0"):
        lanczos(A, 3, torch.zeros(16, dtype=torch.float64))
