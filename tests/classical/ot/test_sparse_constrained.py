"""sparsity_constrained_ot: column sparsity, agreement with POT's dual solver, k = 1 is OT."""

from __future__ import annotations

import numpy as np
import ot
import pytest
import torch

from pdekit.classical.ot import sparsity_constrained_ot
from pdekit.classical.ot.sparse_constrained import sparsity_constrained_dual


def _problem(n=20, m=15, seed=0):
    rng = np.random.default_rng(seed)
    x, y = rng.random((n, 2)), rng.random((m, 2))
    C = ((x[:, None] - y[None]) ** 2).sum(-1)
    return np.full(n, 1.0 / n), np.full(m, 1.0 / m), C / C.max()


@pytest.mark.parametrize(("k", "dtype"), [(2, torch.float64), (3, torch.float32)])
def test_at_most_k_nonzeros_per_column_and_agrees_with_pot(k, dtype):
    a, b, C = _problem()
    gamma = 0.01
    T_ref = ot.smooth.smooth_ot_dual(a, b, C, gamma, reg_type="sparsity_constrained", max_nz=k,
                                     stopThr=1e-12, numItermax=20_000)
    t = lambda x: torch.tensor(x, dtype=dtype)  # noqa: E731
    r = sparsity_constrained_ot(t(a), t(b), t(C), gamma, k, tol=1e-6)
    T = r.plan
    assert T.dtype == dtype
    assert int((T > 0).sum(0).max()) <= k
    assert float(r.marginal_error) <= 1e-5
    # POT stops less converged (its violation ~1e-5): compare at that level
    ref_violation = np.abs(T_ref.sum(1) - a).sum() + np.abs(T_ref.sum(0) - b).sum()
    np.testing.assert_allclose(T.double().numpy(), T_ref, rtol=0, atol=max(ref_violation, 1e-5))
    cost_rtol = 1e-12 if dtype == torch.float64 else 1e-6
    torch.testing.assert_close(r.cost.double(), torch.tensor((T.double().numpy() * C).sum()),
                               rtol=cost_rtol, atol=0)


def test_k_equal_one_recovers_unregularised_ot_on_a_unique_assignment():
    rng = np.random.default_rng(1)
    n = 8
    C = rng.random((n, n))  # continuous random costs: the optimal assignment is unique
    a = np.full(n, 1.0 / n)
    G = ot.emd(a, a, C)
    r = sparsity_constrained_ot(a, a, C, 1.0, 1, tol=1e-9)
    assert float(r.marginal_error) <= 1e-8
    np.testing.assert_allclose(r.plan.numpy(), G, rtol=0, atol=1e-8)
    assert abs(float(r.cost) - ot.emd2(a, a, C)) <= 1e-8
    assert int((r.plan > 1e-12).sum(0).max()) == 1


def test_the_dual_gradient_is_the_marginal_violation():
    a, b, C = (torch.from_numpy(x) for x in _problem(6, 5, seed=2))
    f = torch.randn(6, dtype=torch.float64, requires_grad=True)
    g = torch.randn(5, dtype=torch.float64, requires_grad=True)
    value, T = sparsity_constrained_dual(f, g, a, b, C, 0.5, 2)
    value.backward()
    torch.testing.assert_close(f.grad, a - T.detach().sum(1))
    torch.testing.assert_close(g.grad, b - T.detach().sum(0))


def test_batched_equals_unbatched_and_bad_input():
    a, b, C = _problem(8, 8, seed=3)
    C2 = np.roll(C, 1, axis=0)
    rb = sparsity_constrained_ot(a, b, np.stack([C, C2]), 0.05, 2, tol=1e-7)
    for i, Ci in enumerate((C, C2)):
        ri = sparsity_constrained_ot(a, b, Ci, 0.05, 2, tol=1e-7)
        torch.testing.assert_close(rb.plan[i], ri.plan, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="sparsity_constrained_ot: `k` must be a positive integer"):
        sparsity_constrained_ot(a, b, C, 0.1, 0)
    with pytest.raises(ValueError, match="`gamma` must be > 0"):
        sparsity_constrained_ot(a, b, C, 0.0, 2)
