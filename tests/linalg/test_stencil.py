import numpy as np
import pytest
import scipy.sparse as sp
import torch

from pdekit.linalg import StencilOperator
from tests.linalg.problems import PROBLEM_NAMES, make_problem
from tests.linalg.reference import stencil_matrix_loops


def _reference(A: StencilOperator) -> np.ndarray:
    coefficients = A.coefficients
    if isinstance(coefficients, torch.Tensor):
        coefficients = coefficients.double().cpu().numpy()[(slice(1, -1),) * A.ndim]
    return stencil_matrix_loops(
        A.grid_shape, coefficients, A.spacing, [tuple(b) for b in A.bc],
        None if A.solid is None else A.solid.cpu().numpy(), A.face_average,
    )


@pytest.mark.parametrize("name", PROBLEM_NAMES)
def test_to_scipy_equals_loop_reference(name):
    A, _ = make_problem(name)
    np.testing.assert_allclose(A.to_scipy().toarray(), _reference(A), rtol=1e-14, atol=1e-12)


def test_textbook_laplacian_2d_is_kron_of_1d():
    def lap1d(n):
        return sp.diags([-np.ones(n - 1), 2 * np.ones(n), -np.ones(n - 1)], [-1, 0, 1])

    A = StencilOperator((7, 5))
    expected = sp.kron(lap1d(7), sp.eye(5)) + sp.kron(sp.eye(7), lap1d(5))
    assert abs(A.to_scipy() - expected).max() == 0
    assert A.to_scipy().diagonal().tolist() == [4.0] * 35


def test_spacing_divides_by_h_squared():
    A = StencilOperator((6, 6), spacing=0.5)
    B = StencilOperator((6, 6))
    np.testing.assert_allclose(A.to_scipy().toarray(), 4 * B.to_scipy().toarray())


@pytest.mark.parametrize("name", PROBLEM_NAMES)
@pytest.mark.parametrize("batch", [(), (3,), (2, 2)], ids=["single", "batch3", "batch2x2"])
def test_matvec_equals_scipy(name, batch, dtype, device, rtol_for):
    A, x = make_problem(name, dtype, device, batch=batch)
    S = A.to_scipy().astype(np.float64)
    x64 = x.double().cpu().numpy().reshape(-1, A.n)
    expected = (S @ x64.T).T.reshape(x.shape)
    y = A @ x
    assert y.shape == x.shape and y.dtype == dtype and y.device.type == device.type
    torch.testing.assert_close(
        y.double().cpu(), torch.from_numpy(expected), rtol=rtol_for(dtype), atol=rtol_for(dtype)
    )
    # flat layout (*batch, n) gives the flat result
    flat = A @ x.reshape(*batch, A.n)
    torch.testing.assert_close(flat, y.reshape(*batch, A.n))


@pytest.mark.parametrize("name", ["poisson3d", "poisson3d-obstacles-mixed", "darcy2d"])
def test_functional_kernel_equals_inplace_kernel(name, dtype):
    A, x = make_problem(name, dtype, batch=(2,))
    torch.testing.assert_close(A.apply_functional(x), A._matvec(x))


def test_padded_coefficients_set_boundary_faces():
    a = torch.rand(7, 8, dtype=torch.float64) + 1.0
    A = StencilOperator((5, 6), a)
    inner = a[1:-1, 1:-1]
    # the boundary face of cell (0, j) averages a[1, j+1] with the boundary node a[0, j+1]
    B = StencilOperator((5, 6), inner)
    diff = A.to_scipy().toarray() - B.to_scipy().toarray()
    expected_corner = 0.5 * (a[1, 1] + a[0, 1]) - a[1, 1] + 0.5 * (a[1, 1] + a[1, 0]) - a[1, 1]
    assert diff[0, 0] == pytest.approx(float(expected_corner))
    assert np.count_nonzero(diff - np.diag(np.diag(diff))) == 0


def test_tags():
    assert StencilOperator((4, 4)).positive_definite is True
    assert StencilOperator((4, 4), bc="neumann").positive_definite is False
    solid = np.zeros((5, 5), bool)
    solid[1:4, 1:4] = True
    solid[2, 2] = False  # an enclosed fluid cell: constants on it are a null space
    assert StencilOperator((5, 5), solid=solid).positive_definite is False
    assert StencilOperator((5, 5), solid=solid).symmetric is True


def test_to_moves_and_casts(device):
    A, x = make_problem("darcy2d")
    B = A.to(device, torch.float32)
    assert B.dtype == torch.float32 and B.device.type == device.type
    torch.testing.assert_close((B @ x.to(device, torch.float32)).cpu().double(), A @ x,
                               rtol=1e-5, atol=1e-4)
    assert A.to(torch.float64) is A


def test_solid_rows_are_identity():
    A, _ = make_problem("poisson2d-obstacles")
    S = A.to_scipy()
    solid = A.solid.cpu().numpy().ravel()
    assert solid.sum() > 0
    rows = S[solid]
    assert rows.nnz == solid.sum()  # nothing but the diagonal
    np.testing.assert_array_equal(rows[:, solid].toarray(), np.eye(solid.sum()))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(grid_shape=(0, 3)), "grid_shape"),
        (dict(grid_shape=(2, 2, 2, 2)), "grid_shape"),
        (dict(grid_shape=(4, 4), coefficients=torch.ones(3, 3)), "coefficients"),
        (dict(grid_shape=(4, 4), coefficients=-1.0), "coefficients"),
        (dict(grid_shape=(4, 4), coefficients=torch.zeros(4, 4)), "coefficients"),
        (dict(grid_shape=(4, 4), bc="robin"), "bc"),
        (dict(grid_shape=(4, 4), bc=["dirichlet"]), "bc"),
        (dict(grid_shape=(4, 4), spacing=0.0), "spacing"),
        (dict(grid_shape=(4, 4), solid=np.zeros((3, 3), bool)), "solid"),
        (dict(grid_shape=(4, 4), face_average="geometric"), "face_average"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        StencilOperator(**kwargs)


def test_matvec_rejects_mismatched_input():
    A = StencilOperator((4, 5))
    with pytest.raises(ValueError, match="shape"):
        A @ torch.zeros(4, 4, dtype=torch.float64)
    with pytest.raises(TypeError, match="dtype"):
        A @ torch.zeros(4, 5, dtype=torch.float32)


@pytest.mark.parametrize("name", ["poisson3d", "poisson3d-obstacles-mixed", "darcy2d"])
@pytest.mark.parametrize("reverse", [False, True])
def test_red_black_sweep_kernels_agree(name, reverse, dtype):
    from pdekit.linalg.stencil import _relax_half_uniform, _relax_half_variable

    A, b = make_problem(name, dtype, batch=(2,))
    x = torch.rand_like(b)
    expected = A.relax_red_black(x.clone(), b, 1.3, reverse=reverse)  # the CPU path
    got = x.clone()
    for parity in ((1, 0) if reverse else (0, 1)):  # the fused kernels used on CUDA
        if A.is_uniform:
            _relax_half_uniform.eager(got, b, A._uniform_diag, A._uniform_couplings, parity, 1.3)
        else:
            _relax_half_variable.eager(got, b, A._diag, A._couplings, parity, 1.3)
    torch.testing.assert_close(got, expected)


def test_relax_red_black_on_device(device):
    A, b = make_problem("darcy2d", torch.float32, device, batch=(2,))
    x = torch.zeros_like(b)
    for _ in range(50):
        A.relax_red_black(x, b, 1.5)
    ref = A.to("cpu")
    y = torch.zeros_like(b.cpu())
    for _ in range(50):
        ref.relax_red_black(y, b.cpu(), 1.5)
    torch.testing.assert_close(x.cpu(), y, rtol=1e-4, atol=1e-4)
