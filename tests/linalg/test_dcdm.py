"""The DCDM iteration (pdekit.linalg.dcdm): exact inverse, A-norm monotonicity with any
network, agreement with PCG for a linear SPD preconditioner, the steepest-descent restart on a
stalling direction, batches, and argument checks."""

import numpy as np
import pytest
import torch

from pdekit.classical import poisson
from pdekit.linalg import SolveStatus, aslinearoperator, cg, dcdm, ichol0, jacobi
from pdekit.models.dcdm import DCDMNet, LearnedPreconditioner


def _system(shape=(17, 15), dtype=torch.float64, device="cpu", solid=None, seed=0):
    A = poisson.operator(shape, bc=(("dirichlet", "neumann"), "neumann"), solid=solid, dtype=dtype,
                         device=device)
    g = torch.Generator().manual_seed(seed)
    b = torch.randn(shape, generator=g, dtype=torch.float64).to(device=device, dtype=dtype)
    if solid is not None:
        b[torch.as_tensor(solid, device=device)] = 0
    return A, b


def _exact_inverse(A):
    inverse = torch.linalg.inv(torch.as_tensor(A.to_scipy().toarray(), dtype=A.dtype, device=A.device))
    return aslinearoperator(lambda v: (inverse @ v.reshape(-1)).reshape(v.shape), shape=A.shape,
                            dtype=A.dtype, device=A.device)


def test_the_exact_inverse_as_network_converges_in_one_iteration(dtype, device):
    A, b = _system(dtype=dtype, device=device)
    result = dcdm(A, b, _exact_inverse(A), rtol=1e-4 if dtype == torch.float32 else 1e-10)
    assert result.status is SolveStatus.CONVERGED and result.iterations == 1


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("depth", [0, 2])
def test_any_network_never_increases_the_a_norm_error(seed, depth):
    A, b = _system(seed=seed)
    S = A.to_scipy().toarray()
    exact = torch.as_tensor(np.linalg.solve(S, b.reshape(-1).numpy()))
    torch.manual_seed(seed)
    M = LearnedPreconditioner(DCDMNet(dim=2, channels=4, blocks=(1, 1, 1)))  # random weights
    errors = []

    def record(x):
        e = x.reshape(-1) - exact
        errors.append(float(e @ (A.matvec(e.reshape(A.vector_shape)).reshape(-1))))

    record(torch.zeros_like(b))
    dcdm(A, b, M, rtol=1e-12, maxiter=40, depth=depth, callback=record)
    errors = np.array(errors)
    assert len(errors) == 41
    assert np.all(np.diff(errors) <= 1e-12 * errors[0]), np.diff(errors).max()
    assert errors[-1] < errors[0]


@pytest.mark.parametrize("make_M", [jacobi, ichol0], ids=["jacobi", "ichol0"])
def test_with_a_linear_spd_preconditioner_it_matches_pcg(make_M):
    # exact arithmetic: orthogonalising against the last direction reproduces PCG's
    A, b = _system((24, 20))
    M = make_M(A)
    ours = dcdm(A, b, M, rtol=1e-8, depth=1)
    pcg = cg(A, b, M=M, rtol=1e-8)
    assert ours.converged and pcg.converged
    assert abs(ours.iterations - pcg.iterations) <= 2, (ours.iterations, pcg.iterations)
    torch.testing.assert_close(ours.x, pcg.x, rtol=1e-6, atol=1e-9)


def _skew(A):
    """A "network" whose directions are orthogonal to every residual: v -> J v, J skew-symmetric."""
    return aslinearoperator(lambda v: v.roll(-1, 0) - v.roll(1, 0), shape=A.shape, dtype=A.dtype,
                            device=A.device)


def test_a_direction_orthogonal_to_the_residual_stalls_without_the_restart(dtype, device):
    A, b = _system(dtype=dtype, device=device)
    stalled = dcdm(A, b, _skew(A), rtol=1e-4, maxiter=30, descent_tol=0)
    assert stalled.status is SolveStatus.MAXITER
    norms = stalled.residual_norms  # steps of zero length (float32 rounding: of 1e-7 relative)
    assert float(norms.min()) > 0.99 * float(norms[0]), (norms[0], norms.min())
    # with the restart every step is the A-orthogonalised residual: conjugate gradients
    result = dcdm(A, b, _skew(A), rtol=1e-4)
    reference = cg(A, b, rtol=1e-4)
    assert result.status is SolveStatus.CONVERGED, result.message
    assert f"{result.iterations} steepest-descent restart" in result.info
    assert abs(result.iterations - reference.iterations) <= 3, (result.iterations, reference.iterations)


def test_batched_members_stop_on_their_own_and_solve_their_systems():
    A, b = _system((16, 16))
    batch = torch.stack([b, 2 * b.flip(0), torch.zeros_like(b)])
    result = dcdm(A, batch, jacobi(A), rtol=1e-8, depth=2)
    assert result.converged.all() and result.residual_norms.shape[1:] == (3,)
    S = A.to_scipy()
    for k in range(3):
        residual = batch[k].reshape(-1).numpy() - S @ result.x[k].reshape(-1).numpy()
        assert np.linalg.norm(residual) <= 1e-8 * max(np.linalg.norm(batch[k].numpy()), 1e-300) + 1e-300
    assert result.member_iterations[2] == 0


def test_learned_preconditioner_binds_to_each_system_and_masks_solid_cells():
    solid = np.zeros((20, 18), bool)
    solid[5:9, 4:12] = True
    A, b = _system((20, 18), solid=solid)
    torch.manual_seed(0)
    M = LearnedPreconditioner(DCDMNet(dim=2, channels=4, blocks=(1, 1, 1)))
    bound = M.bind(A)
    assert bound.shape == A.shape and bound.dtype == torch.float64
    z = bound.matvec(b)
    assert z.shape == b.shape and torch.all(z[torch.as_tensor(solid)] == 0)
    torch.testing.assert_close(bound.matvec(3 * b), 3 * z)  # M r = ||r|| f(r / ||r||)
    assert float((z * b).sum()) >= 0  # the sign CG's step needs
    # nonlinear: CG binds it to A and runs flexibly (a symmetric=False M is refused otherwise);
    # an untrained network is a poor preconditioner: only the first steps are checked here
    result = cg(A, b, M=M, rtol=1e-6, maxiter=5)
    assert result.iterations == 5 and result.residual_norms[-1] < result.residual_norms[0]
    with pytest.raises(ValueError, match="2D network cannot precondition"):
        LearnedPreconditioner(DCDMNet(dim=2), (4, 4, 4))
    with pytest.raises(ValueError, match="acts on vectors of shape"):
        M.bind(aslinearoperator(torch.eye(5, dtype=torch.float64)))


def test_argument_errors_name_the_argument():
    A, b = _system()
    with pytest.raises(ValueError, match="`depth`"):
        dcdm(A, b, jacobi(A), depth=-1)
    with pytest.raises(ValueError, match="`M` is required"):
        dcdm(A, b, None)
    with pytest.raises(ValueError, match="`rtol`"):
        dcdm(A, b, jacobi(A), rtol=-1.0)
    with pytest.raises(ValueError, match="`descent_tol`"):
        dcdm(A, b, jacobi(A), descent_tol=-0.5)


def test_learned_preconditioner_cycles_its_scales_and_restarts_the_cycle_on_bind(dtype):
    torch.manual_seed(4)
    net = DCDMNet(dim=2, channels=4, blocks=(1, 1, 1)).to(dtype)
    shape = (12, 10)
    solid = torch.zeros(shape, dtype=torch.bool)
    solid[4:8, 0:4] = True  # coarse blocks wholly inside: solid on the 2x grid too
    A = poisson.operator(shape, bc="dirichlet", solid=solid.numpy(), dtype=dtype)
    x = torch.randn(3, *shape, dtype=dtype).masked_fill(solid, 0.0)
    fine = LearnedPreconditioner(net).bind(A)
    cycling = LearnedPreconditioner(net, scales=(1, 2)).bind(A)
    first, second, third = (cycling.matvec(x) for _ in range(3))
    torch.testing.assert_close(first, fine.matvec(x))
    torch.testing.assert_close(third, first)
    # the 2x application: the block-averaged residual through the network, interpolated back
    coarse_r = torch.nn.functional.avg_pool2d(x.unsqueeze(1), 2).squeeze(1)
    coarse_solid = torch.nn.functional.avg_pool2d(solid[None, None].float(), 2)[0, 0] == 1
    norm = torch.linalg.vector_norm(coarse_r.flatten(1), dim=1)[:, None, None]
    z = net(coarse_r / norm, coarse_solid.expand(coarse_r.shape))
    z = torch.nn.functional.interpolate(z.unsqueeze(1), size=shape, mode="bilinear").squeeze(1)
    z = z.masked_fill(solid, 0.0) * norm
    sign = torch.sign((z * x).flatten(1).sum(1))[:, None, None]
    torch.testing.assert_close(second, sign * z)
    assert torch.all(second[:, solid] == 0) and not torch.allclose(second, first)
    # a new bind (a new solve) starts the cycle again; the moved operator keeps the scales
    torch.testing.assert_close(LearnedPreconditioner(net, scales=(1, 2)).bind(A).matvec(x), first)
    assert cycling.to("cpu", torch.float64).scales == (1, 2)
    for bad in ((), (0,), (1, 2.0), 3):
        with pytest.raises(ValueError, match="`scales`"):
            LearnedPreconditioner(net, scales=bad)
