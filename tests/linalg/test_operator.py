import numpy as np
import pytest
import scipy.sparse as sp
import torch

from pdekit.linalg import (
    CallableOperator,
    CSROperator,
    DenseOperator,
    LinearOperator,
    StencilOperator,
    aslinearoperator,
)


def _matrix(n=30, seed=0):
    rng = np.random.default_rng(seed)
    M = sp.random(n, n, density=0.2, random_state=rng) + sp.eye(n) * n
    return (M + M.T).tocsr()


def _representations(S, dtype, device):
    dense = torch.as_tensor(S.toarray(), dtype=dtype, device=device)
    coo = torch.sparse_coo_tensor(
        np.vstack(S.nonzero()), S[S.nonzero()].A1, S.shape, dtype=dtype, device=device,
        check_invariants=True,
    )
    return {
        "scipy": aslinearoperator(S, dtype=dtype, device=device),
        "dense": aslinearoperator(dense),
        "numpy": aslinearoperator(S.toarray(), dtype=dtype, device=device),
        "coo": aslinearoperator(coo),
        "csr": aslinearoperator(dense.to_sparse_csr()),
        "callable": aslinearoperator(lambda v: dense @ v, shape=S.shape, dtype=dtype, device=device),
    }


def test_every_representation_gives_the_same_product(dtype, device, rtol_for):
    S = _matrix()
    x = torch.rand(4, S.shape[0], dtype=torch.float64)
    expected = torch.from_numpy((S @ x.numpy().T).T)
    for name, op in _representations(S, dtype, device).items():
        assert isinstance(op, LinearOperator), name
        assert op.shape == S.shape and op.dtype == dtype and op.device.type == device.type, name
        y = op @ x.to(device, dtype)
        torch.testing.assert_close(y.cpu().double(), expected, rtol=rtol_for(dtype),
                                   atol=rtol_for(dtype) * 50, msg=name)
        if name != "callable":
            assert op.symmetric is True, name
            torch.testing.assert_close(op.diagonal().cpu().double(),
                                       torch.from_numpy(S.diagonal()), msg=name)


def test_tags_detect_asymmetry():
    S = _matrix() + sp.random(30, 30, density=0.05, random_state=1)
    assert aslinearoperator(S).symmetric is False
    assert aslinearoperator(torch.as_tensor(S.toarray())).symmetric is False
    assert aslinearoperator(_matrix()).symmetric is True


def test_csr_uses_int32_indices():
    op = CSROperator.from_scipy(_matrix())
    assert op.matrix.crow_indices().dtype == torch.int32
    assert op.matrix.col_indices().dtype == torch.int32
    assert op.nnz == _matrix().nnz


def test_csr_to_scipy_round_trip(dtype):
    S = _matrix()
    op = CSROperator.from_scipy(S, dtype=dtype)
    back = op.to_scipy()
    assert back.dtype == (np.float32 if dtype == torch.float32 else np.float64)
    np.testing.assert_allclose(back.toarray(), S.toarray(), rtol=1e-6)


def test_csr_to_device_and_dtype(device):
    op = CSROperator.from_scipy(_matrix()).to(device, torch.float32)
    x = torch.rand(30, dtype=torch.float32, device=device)
    torch.testing.assert_close((op @ x).cpu().double(),
                               torch.from_numpy(_matrix() @ x.cpu().double().numpy()),
                               rtol=1e-5, atol=1e-4)


def test_as_scipy_wraps_any_operator():
    A = StencilOperator((6, 5))
    L = A.as_scipy()
    v = np.random.default_rng(0).random(30)
    np.testing.assert_allclose(L @ v, A.to_scipy() @ v)
    V = np.random.default_rng(1).random((30, 3))
    np.testing.assert_allclose(L @ V, A.to_scipy() @ V)


def test_matvec_into_matches_matvec():
    for op in (StencilOperator((5, 6), torch.rand(5, 6, dtype=torch.float64) + 1),
               CSROperator.from_scipy(_matrix()), DenseOperator(torch.eye(30, dtype=torch.float64))):
        x = torch.rand(3, *op.vector_shape, dtype=torch.float64)
        out = torch.full_like(x, float("nan"))
        op._matvec_into(x, out)
        torch.testing.assert_close(out, op._matvec(x))


def test_non_square_is_refused():
    with pytest.raises(ValueError, match="square"):
        aslinearoperator(np.ones((3, 4)))
    with pytest.raises(ValueError, match="square"):
        aslinearoperator(sp.random(3, 4, density=0.5).tocsr())
    with pytest.raises(ValueError, match="square"):
        CallableOperator(lambda v: v, (3, 4))


def test_callable_needs_shape_and_bad_types_are_refused():
    with pytest.raises(ValueError, match="shape"):
        aslinearoperator(lambda v: v)
    with pytest.raises(TypeError, match="aslinearoperator"):
        aslinearoperator("not a matrix")
