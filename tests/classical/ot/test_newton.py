"""sinkhorn_newton_sparse: agreement with POT, the Newton linear system, iteration counts."""

from __future__ import annotations

import math

import numpy as np
import ot
import pytest
import torch

from pdekit.classical.ot import OTStatus, sinkhorn, sinkhorn_newton_sparse
from pdekit.classical.ot.newton import newton_direction, sparsified_hessian

TOL = {torch.float32: 1e-6, torch.float64: 1e-12}
RTOL = {torch.float32: 1e-4, torch.float64: 1e-9}


def _problem(n=40, m=30, seed=0):
    rng = np.random.default_rng(seed)
    x, y = rng.random((n, 2)), rng.random((m, 2))
    C = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    C /= C.max()
    a, b = rng.random(n) + 0.2, rng.random(m) + 0.2
    return a / a.sum(), b / b.sum(), C


def test_matches_pot_sinkhorn_log(device, dtype):
    a, b, C = _problem()
    eps = 5e-3
    P_ref = ot.sinkhorn(a, b, C, eps, method="sinkhorn_log", stopThr=1e-14, numItermax=500_000)
    t = lambda x: torch.as_tensor(x, dtype=dtype, device=device)  # noqa: E731
    r = sinkhorn_newton_sparse(t(a), t(b), t(C), eps, tol=TOL[dtype], keep_per_row=5)
    assert r.status is OTStatus.CONVERGED, r.message
    assert r.newton_iterations >= 1 and r.cg_iterations >= r.newton_iterations
    assert r.plan.dtype == dtype and r.plan.device.type == device.type
    rtol = RTOL[dtype]
    torch.testing.assert_close(r.cost.double().cpu(),
                               torch.tensor(float((P_ref * C).sum()), dtype=torch.float64),
                               rtol=rtol, atol=0)
    torch.testing.assert_close(r.plan.double().cpu(), torch.from_numpy(P_ref), rtol=0,
                               atol=rtol * P_ref.max())
    assert float(r.marginal_error) <= TOL[dtype]


def _dense_sparsified_hessian(P: np.ndarray, keep: int) -> np.ndarray:
    """Reference: [[diag(P 1), S], [S^T, diag(P^T 1)]] with S the `keep` largest entries."""
    n, m = P.shape
    flat = P.ravel()
    top = np.argpartition(-flat, keep - 1)[:keep]
    S = np.zeros_like(flat)
    S[top] = flat[top]
    S = S.reshape(n, m)
    H = np.zeros((n + m, n + m))
    H[:n, :n] = np.diag(P.sum(1))
    H[n:, n:] = np.diag(P.sum(0))
    H[:n, n:] = S
    H[n:, :n] = S.T
    return H


def test_newton_step_solves_its_sparse_linear_system():
    a, b, C = _problem(30, 25, seed=1)
    eps = 1e-2
    warm = sinkhorn(a, b, C, eps, tol=1e-3, maxiter=30)
    P = warm.plan.unsqueeze(0)
    grad_f = torch.from_numpy(a).unsqueeze(0) - P.sum(2)
    grad_g = torch.from_numpy(b).unsqueeze(0) - P.sum(1)
    keep = 3 * 30
    H_ref = _dense_sparsified_hessian(P[0].numpy(), keep)
    H = sparsified_hessian(P, keep)
    np.testing.assert_allclose(H.to_scipy().toarray(), H_ref, rtol=0, atol=1e-15)
    assert np.all(np.linalg.eigvalsh(H_ref) > -1e-14)  # semidefinite by construction
    d_f, d_g, res, _ = newton_direction(P, grad_f, grad_g, eps, keep=keep, rtol=1e-10)
    assert res.status.ok
    rhs = torch.cat([grad_f, grad_g], 1)[0].numpy()
    x = torch.cat([d_f, d_g], 1)[0].numpy() / eps
    residual = np.linalg.norm(H_ref @ x - rhs)
    assert residual <= 1e-10 * np.linalg.norm(rhs)
    # the direction ascends the Lyapunov potential
    assert float((grad_f * d_f).sum() + (grad_g * d_g).sum()) > 0


def test_batched_equals_unbatched():
    probs = [_problem(20, 20, seed=s) for s in (2, 3)]
    a = np.stack([p[0] for p in probs])
    b = np.stack([p[1] for p in probs])
    C = np.stack([p[2] for p in probs])
    rb = sinkhorn_newton_sparse(a, b, C, 5e-3, tol=1e-11)
    assert rb.status.ok, rb.message
    for i in range(2):
        ri = sinkhorn_newton_sparse(a[i], b[i], C[i], 5e-3, tol=1e-11)
        torch.testing.assert_close(rb.cost[i], ri.cost, rtol=1e-9, atol=0)
        torch.testing.assert_close(rb.plan[i], ri.plan, rtol=0, atol=1e-9 * float(ri.plan.max()))


def test_far_fewer_iterations_than_sinkhorn_on_a_random_assignment():
    # the paper's random assignment problem (uniform costs), smaller: n = 100, eta = 300
    rng = np.random.default_rng(4)
    n = 100
    C = rng.random((n, n))
    a = np.full(n, 1.0 / n)
    eps = 1.0 / 300
    sns = sinkhorn_newton_sparse(a, a, C, eps, tol=1e-10)
    sk = sinkhorn(a, a, C, eps, tol=1e-10, maxiter=50_000)
    assert sns.status.ok and sk.status.ok, (sns.message, sk.message)
    assert sns.iterations * 10 <= sk.iterations
    torch.testing.assert_close(sns.cost, sk.cost, rtol=1e-8, atol=0)
    # super-exponential final phase: the last Newton steps cut the violation by > 10x each
    hist = sns.marginal_error_history.numpy()
    tail = hist[-4:]
    assert np.all(tail[1:] < 0.1 * tail[:-1])


def test_sparsity_level_is_a_parameter():
    a, b, C = _problem(40, 40, seed=5)
    coarse = sinkhorn_newton_sparse(a, b, C, 2e-3, tol=1e-10, keep_per_row=1.0)
    full = sinkhorn_newton_sparse(a, b, C, 2e-3, tol=1e-10, keep_per_row=40.0)
    assert full.status.ok
    # the full Hessian (exact Newton) never needs more Newton steps than a sparser one
    assert full.newton_iterations <= coarse.newton_iterations or not coarse.status.ok


def test_bad_input_is_refused():
    a, b, C = _problem(5, 5)
    with pytest.raises(ValueError, match="sinkhorn_newton_sparse: the marginals must be > 0"):
        sinkhorn_newton_sparse(np.r_[0.0, a[1:] / a[1:].sum()], b, C, 1e-2)
    with pytest.raises(ValueError, match="`eps` must be > 0"):
        sinkhorn_newton_sparse(a, b, C, 0)
    with pytest.raises(ValueError, match="`keep_per_row` must be > 0"):
        sinkhorn_newton_sparse(a, b, C, 1e-2, keep_per_row=0)
    with pytest.raises(ValueError, match="same total mass"):
        sinkhorn_newton_sparse(a, 2 * b, C, 1e-2)
    assert math.isfinite(float(sinkhorn_newton_sparse(a, b, C, 1e-2).cost))
