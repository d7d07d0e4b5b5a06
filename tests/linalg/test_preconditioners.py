import numpy as np
import pytest
import scipy.sparse as sp
import torch

from pdekit.linalg import CSROperator, StencilOperator, cg, ichol0, jacobi, ssor
from pdekit.linalg.preconditioners import ichol0_factor_csr, ichol0_factor_stencil
from tests.linalg.problems import PROBLEM_NAMES, make_problem
from tests.linalg.reference import ichol0_dense


def _dense_inverse_action(M, n, dtype=torch.float64):
    return M @ torch.eye(n, dtype=dtype).reshape(n, *M.vector_shape)


@pytest.mark.parametrize("name", ["poisson2d", "poisson3d-obstacles-mixed", "darcy2d"])
def test_ichol0_factors_agree_with_textbook_elimination(name):
    A, _ = make_problem(name)
    S = A.to_scipy()
    expected = ichol0_dense(S.toarray())
    np.testing.assert_allclose(ichol0_factor_csr(S).toarray(), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ichol0_factor_stencil(A).toarray(), expected, rtol=1e-12, atol=1e-12)


def test_ichol0_general_matrix_with_fill_inside_the_pattern():
    # a 9-point-like pattern has triangles, so IC(0) updates off-diagonal entries too
    n = 6
    one_d = sp.diags([-np.ones(n - 1), 2.5 * np.ones(n), -np.ones(n - 1)], [-1, 0, 1])
    S = (sp.kron(one_d, one_d) + 4 * sp.eye(n * n)).tocsr()
    np.testing.assert_allclose(
        ichol0_factor_csr(S).toarray(), ichol0_dense(S.toarray()), rtol=1e-12, atol=1e-12
    )
    M = ichol0(S)
    assert isinstance(M.factor, sp.csr_matrix)


def test_ichol0_of_tridiagonal_is_exact_cholesky():
    S = sp.diags([-np.ones(9), 2 * np.ones(10), -np.ones(9)], [-1, 0, 1]).tocsr()
    L = ichol0_factor_csr(S).toarray()
    np.testing.assert_allclose(L, np.linalg.cholesky(S.toarray()), rtol=1e-12)
    M = ichol0(S)
    torch.testing.assert_close(_dense_inverse_action(M, 10), torch.from_numpy(np.linalg.inv(S.toarray())))


@pytest.mark.parametrize("omega", [0.7, 1.0, 1.6])
def test_ssor_matches_its_dense_formula(omega):
    A, _ = make_problem("poisson3d-obstacles-mixed")
    S = A.to_scipy().toarray()
    D = np.diag(np.diag(S))
    L, U = np.tril(S, -1), np.triu(S, 1)
    M_ssor = (D + omega * L) @ np.linalg.inv(D) @ (D + omega * U) / (omega * (2 - omega))
    got = _dense_inverse_action(ssor(A, omega), A.n).reshape(A.n, A.n)
    torch.testing.assert_close(got, torch.from_numpy(np.linalg.inv(M_ssor)).T, rtol=1e-9, atol=1e-12)


def test_jacobi_is_the_inverse_diagonal(dtype, device):
    A, x = make_problem("darcy2d", dtype, device)
    M = jacobi(A)
    torch.testing.assert_close(M @ x, x / A.diagonal())
    assert M.positive_definite and M.symmetric


@pytest.mark.parametrize("name", PROBLEM_NAMES)
@pytest.mark.parametrize("make", [jacobi, ssor, ichol0], ids=["jacobi", "ssor", "ichol0"])
def test_preconditioners_run_in_every_dtype_and_device(name, make, dtype, device):
    A, b = make_problem(name, dtype, device)
    M = make(A)
    assert M.dtype == dtype and M.device.type == device.type
    plain = cg(A, b, rtol=1e-4)
    res = cg(A, b, rtol=1e-4, M=M)
    assert res.converged
    assert res.iterations <= plain.iterations
    assert (M @ b).shape == b.shape


def test_preconditioners_on_csr_operators():
    A, b = make_problem("poisson2d-obstacles")
    C = CSROperator.from_scipy(A.to_scipy())
    for make in (jacobi, ssor, ichol0):
        torch.testing.assert_close(make(C) @ b.reshape(-1), (make(A) @ b).reshape(-1))


def test_bad_arguments():
    A = StencilOperator((5, 5))
    with pytest.raises(ValueError, match="omega"):
        ssor(A, 2.0)
    with pytest.raises(ValueError, match="shift"):
        ichol0(A, shift=-1)
    indefinite = sp.diags([1.0, -1.0, 2.0]).tocsr()
    with pytest.raises(ValueError, match="non-positive"):
        jacobi(indefinite)
    not_m_matrix = sp.csr_matrix(np.array([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(ValueError, match="breakdown"):
        ichol0_factor_csr(not_m_matrix)
