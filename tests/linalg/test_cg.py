import itertools

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from pdekit.linalg import (
    DenseOperator,
    SolveStatus,
    StencilOperator,
    aslinearoperator,
    cg,
    ichol0,
    jacobi,
    sor,
    ssor,
)
from tests.linalg.problems import (
    PROBLEM_NAMES,
    connected_obstacles,
    darcy_coefficients,
    make_problem,
)


def _scipy_cg_iterations(S, b, rtol, M=None):
    count = [0]

    def callback(_):
        count[0] += 1

    x, info = spla.cg(S, b, rtol=rtol, M=M, callback=callback, maxiter=10 * S.shape[0])
    assert info == 0
    return x, count[0]


@pytest.mark.parametrize("name", PROBLEM_NAMES)
def test_cg_agrees_with_spsolve(name, dtype, device, rtol_for):
    A, b = make_problem(name, dtype, device)
    rtol = 1e-10 if dtype == torch.float64 else 1e-5
    res = cg(A, b, rtol=rtol)
    assert res.status is SolveStatus.CONVERGED, res.message
    S = A.to_scipy().astype(np.float64)
    b64 = b.double().cpu().numpy().ravel()
    expected = spla.spsolve(S.tocsc(), b64)
    x = res.x.double().cpu().numpy().ravel()
    assert res.x.shape == b.shape and res.x.dtype == dtype
    # forward error within the conditioning, backward error at the tolerance
    assert np.linalg.norm(x - expected) <= 1e3 * rtol * np.linalg.norm(expected)
    backward = np.linalg.norm(S @ x - b64) / np.linalg.norm(b64)
    assert backward <= (1.5 * rtol if dtype == torch.float64 else 20 * rtol)


def _big_problems():
    shape3 = (20, 20, 20)
    return {
        "poisson2d-128": StencilOperator((128, 128)),
        "poisson3d-20": StencilOperator(shape3),
        "poisson3d-20-obstacles": StencilOperator(shape3, solid=connected_obstacles(shape3, 0.2, 5)),
        "darcy2d-96": StencilOperator((96, 96), torch.from_numpy(darcy_coefficients((96, 96), 7))),
    }


@pytest.mark.parametrize("name", list(_big_problems()))
@pytest.mark.parametrize("precond", [None, "jacobi", "ssor", "ichol0"])
def test_iteration_count_matches_scipy_cg(name, precond):
    A = _big_problems()[name]
    b = torch.rand(A.grid_shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    if A.solid is not None:
        b[A.solid] = 0
    M = {None: None, "jacobi": jacobi, "ssor": lambda A: ssor(A, 1.4), "ichol0": ichol0}[precond]
    M = None if M is None else M(A)
    res = cg(A, b, rtol=1e-8, M=M)
    x_ref, iters_ref = _scipy_cg_iterations(
        A.to_scipy(), b.numpy().ravel(), 1e-8, None if M is None else M.as_scipy()
    )
    assert res.converged
    assert abs(res.iterations - iters_ref) <= max(1, 0.02 * iters_ref), (res.iterations, iters_ref)
    np.testing.assert_allclose(res.x.numpy().ravel(), x_ref, rtol=1e-6, atol=1e-8 * abs(x_ref).max())


@pytest.mark.parametrize("name", ["poisson2d", "poisson3d-obstacles-mixed", "darcy2d"])
def test_batched_solve_equals_individual_solves(name, dtype, device, rtol_for):
    A, b = make_problem(name, dtype, device, batch=(2, 3))
    b = b * torch.tensor([1.0, 10.0, 0.1], dtype=dtype, device=device).reshape(1, 3, 1, *([1] * (A.ndim - 1)))
    rtol = 1e-9 if dtype == torch.float64 else 1e-5
    batched = cg(A, b, rtol=rtol, M=jacobi(A))
    assert batched.residual_norms.shape == (batched.iterations + 1, 2, 3)
    assert batched.converged.shape == (2, 3) and bool(batched.converged.all())
    for i in range(2):
        for j in range(3):
            single = cg(A, b[i, j], rtol=rtol, M=jacobi(A))
            # float64: identical iteration counts; float32 rounding may shift the stop by one
            slack = 0 if dtype == torch.float64 else 1
            assert abs(int(batched.member_iterations[i, j]) - single.iterations) <= slack
            torch.testing.assert_close(batched.x[i, j], single.x, rtol=10 * rtol_for(dtype),
                                       atol=10 * rtol_for(dtype) * float(single.x.abs().max()))


def test_scipy_matrix_and_flat_rhs():
    A, b = make_problem("poisson2d")
    S = A.to_scipy()
    res = cg(S, b.reshape(-1), rtol=1e-10)
    assert res.x.shape == (A.n,)
    torch.testing.assert_close(res.x, cg(A, b, rtol=1e-10).x.reshape(-1))
    # a flat rhs for a stencil comes back flat
    assert cg(A, b.reshape(-1), rtol=1e-10).x.shape == (A.n,)


def test_x0_is_not_modified_and_is_used():
    A, b = make_problem("poisson3d")
    exact = cg(A, b, rtol=1e-12).x
    x0 = exact + 1e-6 * torch.rand_like(exact)
    x0_copy = x0.clone()
    res = cg(A, b, x0, rtol=1e-8)
    assert torch.equal(x0, x0_copy)
    assert res.iterations < cg(A, b, rtol=1e-8).iterations


def test_residual_history_and_callback():
    A, b = make_problem("poisson2d")
    seen = []
    res = cg(A, b, rtol=1e-8, callback=lambda x: seen.append(x.clone()))
    assert len(seen) == res.iterations
    assert res.residual_norms.shape == (res.iterations + 1,)
    assert float(res.residual_norms[0]) == pytest.approx(float(torch.linalg.norm(b)))
    assert float(res.residual_norms[-1]) <= 1e-8 * float(torch.linalg.norm(b))
    true_residual = torch.linalg.norm(b - A @ seen[-1])
    assert float(true_residual) == pytest.approx(float(res.residual_norms[-1]), rel=1e-6)


def test_check_every_only_delays_the_stop():
    A, b = make_problem("poisson2d-obstacles")
    every = cg(A, b, rtol=1e-8, check_every=1).iterations
    sparse_checks = cg(A, b, rtol=1e-8, check_every=7).iterations
    assert every <= sparse_checks < every + 7
    assert sparse_checks % 7 == 0


def test_zero_rhs_gives_zero_solution():
    A, b = make_problem("poisson2d", batch=(2,))
    b[1] = 0
    res = cg(A, b, x0=torch.ones_like(b), rtol=1e-8)
    assert bool(res.converged.all())
    assert torch.count_nonzero(res.x[1]) == 0
    assert int(res.member_iterations[1]) == 0


def test_singular_consistent_neumann_system_converges():
    A = StencilOperator((16, 12), bc="neumann")
    assert A.positive_definite is False
    b = torch.rand(16, 12, dtype=torch.float64)
    b -= b.mean()  # in the range of A
    res = cg(A, b, rtol=1e-10)
    assert res.status is SolveStatus.CONVERGED
    assert float(torch.linalg.norm(A @ res.x - b)) <= 1e-9 * float(torch.linalg.norm(b))


def _float32_relative_residual(A, b, x):
    return float(torch.linalg.norm(b.double() - A @ x.double()) / torch.linalg.norm(b.double()))


def test_float32_convergence_is_real():
    A = StencilOperator((64, 64))
    b = torch.rand(64, 64, dtype=torch.float32, generator=torch.Generator().manual_seed(0))
    res = cg(A.to(torch.float32), b, rtol=3e-5)
    assert res.status is SolveStatus.CONVERGED
    assert _float32_relative_residual(A, b, res.x) <= 3e-5 * 1.1


def test_float32_unattainable_tolerance_reports_stagnation():
    A = StencilOperator((64, 64))
    b = torch.rand(64, 64, dtype=torch.float32, generator=torch.Generator().manual_seed(0))
    res = cg(A.to(torch.float32), b, rtol=1e-7)
    assert res.status is SolveStatus.STAGNATED and not bool(res.converged)
    assert "true residual" in res.message
    assert _float32_relative_residual(A, b, res.x) < 1e-3  # still a good float32 answer


def test_negative_curvature_is_detected_and_the_iterate_is_kept():
    A = StencilOperator((8, 8)).to_scipy()
    indefinite = aslinearoperator(-A, symmetric=True)
    b = torch.rand(64, dtype=torch.float64)
    res = cg(indefinite, b, rtol=1e-8)
    assert res.status is SolveStatus.NOT_POSITIVE_DEFINITE
    assert "iteration 1" in res.message and "p.Ap <= 0" in res.message
    assert torch.count_nonzero(res.x) == 0  # the last good iterate: x0
    # an indefinite diagonal: breaks down later, never returns NaN
    d = torch.linspace(-1, 10, 50, dtype=torch.float64)
    res = cg(DenseOperator(torch.diag(d)), torch.ones(50, dtype=torch.float64), rtol=1e-10)
    assert res.status is SolveStatus.NOT_POSITIVE_DEFINITE
    assert bool(torch.isfinite(res.x).all())
    with pytest.raises(RuntimeError, match="not positive definite"):
        res.raise_for_status()


def test_maxiter_status():
    A, b = make_problem("poisson2d")
    res = cg(A, b, rtol=1e-12, maxiter=3)
    assert res.status is SolveStatus.MAXITER and res.iterations == 3
    assert not bool(res.converged)


def test_flexible_cg_with_a_nonlinear_preconditioner():
    A, b = make_problem("poisson2d-obstacles")
    linear = cg(A, b, rtol=1e-10, M=jacobi(A))
    assert cg(A, b, rtol=1e-10, M=jacobi(A), flexible=True).iterations == linear.iterations

    def varying(r):  # a few Gauss-Seidel sweeps: a nonlinear, varying preconditioner
        return sor(A, r, 1.0, rtol=0.3, maxiter=4).x

    res = cg(A, b, rtol=1e-10, M=varying, flexible=True)
    assert res.status is SolveStatus.CONVERGED
    assert res.iterations < linear.iterations


def test_flexible_cg_steps_along_r_where_the_preconditioner_is_no_descent_direction(dtype):
    A, b = make_problem("poisson2d-obstacles", dtype)
    exact = torch.from_numpy(spla.spsolve(A.to_scipy().tocsc(), b.double().numpy().ravel()))
    calls = [0]

    def sometimes_wrong(r):  # Jacobi, but every third application points uphill
        calls[0] += 1
        z = jacobi(A).matvec(r)
        return -z if calls[0] % 3 == 0 else z

    errors = []

    def a_norm_error(x):
        e = x.double().ravel() - exact
        errors.append(float(e @ torch.from_numpy(A.to_scipy() @ e.numpy())))

    rtol = 1e-8 if dtype == torch.float64 else 1e-4
    res = cg(A, b, rtol=rtol, M=sometimes_wrong, flexible=True, callback=a_norm_error)
    assert res.status is SolveStatus.CONVERGED, res.message
    assert "steepest-descent step" in res.info
    fallbacks = int(res.info.split()[0])
    assert 0.2 * calls[0] < fallbacks < 0.5 * calls[0]
    # each step is an exact line search, so the A-norm error never grows
    assert all(b_ <= a * (1 + 1e-5) for a, b_ in itertools.pairwise(errors))
    # without the guard the first uphill step ended the solve as "not positive definite"
    assert res.iterations > 3


def test_flexible_cg_reports_no_fallback_for_a_good_preconditioner():
    A, b = make_problem("poisson2d")
    res = cg(A, b, rtol=1e-10, M=jacobi(A), flexible=True)
    assert res.status is SolveStatus.CONVERGED and res.info == ""


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda A, b: cg(A, b, rtol=-1e-3), ValueError, "rtol"),
        (lambda A, b: cg(A, b, atol=float("nan")), ValueError, "atol"),
        (lambda A, b: cg(A, b, maxiter=0), ValueError, "maxiter"),
        (lambda A, b: cg(A, b, check_every=0), ValueError, "check_every"),
        (lambda A, b: cg(A, b[:-1]), ValueError, "`b` has shape"),
        (lambda A, b: cg(A, b, x0=b[:-1]), ValueError, "`x0` has shape"),
        (lambda A, b: cg(A, b.float()), TypeError, "dtype"),
        (lambda A, b: cg(A, torch.where(b > 0.5, float("nan"), b)), ValueError, "`b` contains NaN"),
        (lambda A, b: cg(A, b, x0=torch.full_like(b, float("inf"))), ValueError, "`x0` contains Inf"),
        (lambda A, b: cg(A, b, M=jacobi(StencilOperator((3, 3)))), ValueError, "`M` has shape"),
        (lambda A, b: cg(A, b, callback=3), TypeError, "callback"),
    ],
)
def test_bad_input_raises_early_naming_the_argument(call, error, message):
    A, b = make_problem("poisson2d")
    with pytest.raises(error, match=message):
        call(A, b)


def test_nonsymmetric_operator_is_refused():
    S = sp.random(20, 20, density=0.3, random_state=0) + 20 * sp.eye(20)
    with pytest.raises(ValueError, match="symmetric"):
        cg(S.tocsr(), torch.ones(20, dtype=torch.float64))


@pytest.mark.gpu
def test_cg_on_cuda_matches_cpu():
    A, b = make_problem("darcy2d", torch.float64, "cuda", batch=(3,))
    res = cg(A, b, rtol=1e-10)
    ref = cg(A.to("cpu"), b.cpu(), rtol=1e-10)
    assert res.x.device.type == "cuda"
    torch.testing.assert_close(res.x.cpu(), ref.x, rtol=1e-8, atol=1e-8)
    assert ref.iterations <= res.iterations < ref.iterations + 10


@pytest.mark.gpu
def test_cuda_graph_blocks_equal_the_eager_loop(monkeypatch):
    A, b = make_problem("poisson3d-obstacles-mixed", torch.float64, "cuda", batch=(2,))
    graphed = cg(A, b, rtol=1e-10, check_every=5)
    monkeypatch.setenv("PDEKIT_CUDA_GRAPHS", "0")
    eager = cg(A, b, rtol=1e-10, check_every=5)
    assert graphed.iterations == eager.iterations
    torch.testing.assert_close(graphed.x, eager.x)
    torch.testing.assert_close(graphed.residual_norms, eager.residual_norms)


@pytest.mark.gpu
def test_uncapturable_preconditioner_on_cuda():
    A, b = make_problem("poisson2d", torch.float64, "cuda")
    res = cg(A, b, rtol=1e-10, M=ichol0(A))
    ref = cg(A.to("cpu"), b.cpu(), rtol=1e-10, M=ichol0(A.to("cpu")))
    assert res.converged and abs(res.iterations - ref.iterations) < 10


@pytest.mark.slow
@pytest.mark.parametrize("precond", [None, "jacobi", "ssor", "ichol0"])
@pytest.mark.parametrize("obstacles", [False, True], ids=["plain", "obstacles"])
def test_iteration_count_matches_scipy_cg_at_64_cubed(precond, obstacles):
    shape = (64, 64, 64)
    solid = connected_obstacles(shape, 0.15, 9) if obstacles else None
    A = StencilOperator(shape, solid=solid)
    b = torch.rand(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    if solid is not None:
        b[A.solid] = 0
    M = {None: None, "jacobi": jacobi, "ssor": lambda A: ssor(A, 1.5), "ichol0": ichol0}[precond]
    M = None if M is None else M(A)
    res = cg(A, b, rtol=1e-8, M=M)
    _, iters_ref = _scipy_cg_iterations(
        A.to_scipy(), b.numpy().ravel(), 1e-8, None if M is None else M.as_scipy()
    )
    assert abs(res.iterations - iters_ref) <= max(1, 0.02 * iters_ref), (res.iterations, iters_ref)


def test_device_mismatch_is_refused():
    A, b = make_problem("poisson2d")
    with pytest.raises(ValueError, match="is on meta"):
        cg(A, b.to("meta"))
