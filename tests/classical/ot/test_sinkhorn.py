"""sinkhorn: agreement with POT's log-domain Sinkhorn, marginals, batching, dtypes, bad input."""

from __future__ import annotations

import numpy as np
import ot
import pytest
import torch

from pdekit.classical.ot import OTStatus, sinkhorn

# float32 cannot reach much below 1e-6 in the marginal violation
TOL = {torch.float32: 1e-6, torch.float64: 1e-12}
# agreement with POT's float64 solution (at our tolerance)
RTOL = {torch.float32: 1e-4, torch.float64: 1e-9}


def _problem(n=30, m=40, seed=0, d=2):
    rng = np.random.default_rng(seed)
    x, y = rng.random((n, d)), rng.random((m, d))
    C = ot.dist(x, y)
    C /= C.max()
    a = rng.random(n) + 0.1
    b = rng.random(m) + 0.1
    return a / a.sum(), b / b.sum(), C


def _pot(a, b, C, eps):
    P, log = ot.sinkhorn(a, b, C, eps, method="sinkhorn_log", stopThr=1e-14, numItermax=200_000,
                         log=True)
    return P, eps * log["log_u"], eps * log["log_v"]


def _t(x, device, dtype):
    return torch.as_tensor(x, dtype=dtype, device=device)


@pytest.mark.parametrize("eps", [5e-2, 1e-2])
@pytest.mark.parametrize("method", ["auto", "log"])
def test_matches_pot_sinkhorn_log(device, dtype, eps, method):
    a, b, C = _problem()
    P_ref, f_ref, g_ref = _pot(a, b, C, eps)
    r = sinkhorn(_t(a, device, dtype), _t(b, device, dtype), _t(C, device, dtype), eps,
                 tol=TOL[dtype], method=method, maxiter=50_000)
    assert r.status is OTStatus.CONVERGED, r.message
    assert r.plan.dtype == dtype and r.plan.device.type == device.type
    assert r.f.shape == (30,) and r.g.shape == (40,) and r.cost.shape == ()
    rtol = RTOL[dtype]
    P = r.plan.double().cpu()
    cost_ref = torch.tensor(float((P_ref * C).sum()), dtype=torch.float64)
    torch.testing.assert_close(r.cost.double().cpu(), cost_ref, rtol=rtol, atol=0)
    torch.testing.assert_close(P, torch.from_numpy(P_ref), rtol=0, atol=rtol * P_ref.max())
    # potentials are unique up to (f + s, g - s): compare in the gauge f[0] = 0
    f, g = r.f.double().cpu(), r.g.double().cpu()
    torch.testing.assert_close(f - f[0], torch.from_numpy(f_ref - f_ref[0]), rtol=0,
                               atol=rtol * 10)
    torch.testing.assert_close(g + f[0], torch.from_numpy(g_ref + f_ref[0]), rtol=0,
                               atol=rtol * 10)


def test_marginals_meet_the_tolerance_and_the_history_is_recorded(dtype):
    a, b, C = _problem(50, 60, seed=1)
    tol = 10 * TOL[dtype]
    r = sinkhorn(_t(a, "cpu", dtype), _t(b, "cpu", dtype), _t(C, "cpu", dtype), 1e-2, tol=tol,
                 check_every=5)
    assert r.status.ok
    P = r.plan.double()
    violation = float((P.sum(1) - torch.from_numpy(a)).abs().sum()
                      + (P.sum(0) - torch.from_numpy(b)).abs().sum())
    assert violation <= 2 * tol
    assert abs(float(r.marginal_error) - violation) <= 1e-2 * tol + 1e-7
    its = r.history_iterations
    assert its[0] == 1 and bool((its[1:] - its[:-1] == 5).all())
    assert r.iterations == int(its[-1]) and r.marginal_error_history.shape == its.shape
    assert float(r.marginal_error_history[-1]) <= tol < float(r.marginal_error_history[0])
    assert bool((r.history_seconds[1:] >= r.history_seconds[:-1]).all())


def test_batched_equals_unbatched(device, dtype):
    problems = [_problem(20, 25, seed=s) for s in range(3)]
    a = _t(np.stack([p[0] for p in problems]), device, dtype)
    b = _t(np.stack([p[1] for p in problems]), device, dtype)
    C = _t(np.stack([p[2] for p in problems]), device, dtype)
    tol = TOL[dtype]
    rb = sinkhorn(a, b, C, 2e-2, tol=tol)
    assert rb.status.ok and rb.plan.shape == (3, 20, 25) and rb.cost.shape == (3,)
    assert rb.marginal_error_history.shape[1:] == (3,)
    for i in range(3):
        ri = sinkhorn(a[i], b[i], C[i], 2e-2, tol=tol)
        torch.testing.assert_close(rb.cost[i], ri.cost, rtol=RTOL[dtype] * 10, atol=0)
        torch.testing.assert_close(rb.plan[i], ri.plan, rtol=0, atol=RTOL[dtype] * 10 * float(ri.plan.max()))
        assert 0 < int(rb.member_iterations[i]) <= rb.iterations


def test_shared_cost_with_batched_marginals():
    a, b, C = _problem(15, 15, seed=3)
    a2 = np.roll(a, 3)
    r = sinkhorn(np.stack([a, a2]), b, C, 3e-2, tol=1e-12)
    assert r.plan.shape == (2, 15, 15)
    for i, ai in enumerate((a, a2)):
        P_ref, _, _ = _pot(ai, b, C, 3e-2)
        torch.testing.assert_close(r.plan[i], torch.from_numpy(P_ref), rtol=0, atol=1e-10)


def test_numpy_inputs_give_float64_tensors_and_eps_scaling_gives_the_same_answer():
    a, b, C = _problem(25, 25, seed=4)
    r = sinkhorn(a, b, C, 1e-3, tol=1e-10)
    assert isinstance(r.plan, torch.Tensor) and r.plan.dtype == torch.float64
    rs = sinkhorn(a, b, C, 1e-3, tol=1e-10, eps_scaling=0.5)
    assert r.status.ok and rs.status.ok
    torch.testing.assert_close(rs.cost, r.cost, rtol=1e-8, atol=0)
    torch.testing.assert_close(rs.plan, r.plan, rtol=0, atol=1e-8)


def test_warm_start_from_converged_potentials_needs_one_check():
    a, b, C = _problem(20, 20, seed=5)
    r = sinkhorn(a, b, C, 1e-2, tol=1e-11)
    r2 = sinkhorn(a, b, C, 1e-2, tol=1e-10, init=(r.f, r.g))
    assert r2.status.ok and r2.iterations == 1


def test_cost_approaches_the_exact_cost_as_eps_decreases():
    a, b, C = _problem(40, 40, seed=6)
    exact = ot.emd2(a, b, C)
    gaps = []
    for eps in (1e-1, 1e-2, 1e-3, 1e-4):
        r = sinkhorn(a, b, C, eps, tol=1e-9, maxiter=200_000)
        assert r.status.ok, r.message
        gaps.append(float(r.cost) - exact)
    assert all(g >= -1e-9 for g in gaps)  # entropic plans are feasible: never below the LP
    assert gaps[0] > gaps[1] > gaps[2] > gaps[3]
    assert gaps[-1] <= 1e-3 * exact


def test_zero_mass_entries_match_the_problem_on_the_support():
    a, b, C = _problem(20, 22, seed=7)
    a[[2, 5]] = 0
    b[[0, 7, 8]] = 0
    a, b = a / a.sum(), b / b.sum()
    r = sinkhorn(a, b, C, 2e-2, tol=1e-12)
    assert r.status.ok, r.message
    rows, cols = a > 0, b > 0
    P_ref, _, _ = _pot(a[rows], b[cols], C[np.ix_(rows, cols)], 2e-2)
    P = r.plan.numpy()
    assert np.all(P[~rows] == 0) and np.all(P[:, ~cols] == 0)
    np.testing.assert_allclose(P[np.ix_(rows, cols)], P_ref, rtol=0, atol=1e-11)
    assert np.all(np.isneginf(r.f.numpy()[~rows])) and np.all(np.isfinite(r.f.numpy()[rows]))


def test_tiny_eps_does_not_overflow_and_reports_non_convergence():
    a, b, C = _problem(30, 30, seed=8)
    C = C + 5.0  # exp(-C / eps) underflows to 0 everywhere: plain Sinkhorn divides by zero
    r = sinkhorn(a, b, C, 1e-5, tol=1e-12, maxiter=40)
    assert r.status is OTStatus.MAXITER
    assert "maxiter" in r.message and "marginal violation" in r.message
    assert bool(torch.isfinite(r.plan).all()) and bool(torch.isfinite(r.f).all())
    assert float(r.marginal_error) < 2  # a plan, not garbage
    with pytest.raises(RuntimeError, match="not converged"):
        r.raise_for_status()
    r32 = sinkhorn(torch.tensor(a, dtype=torch.float32), torch.tensor(b, dtype=torch.float32),
                   torch.tensor(C, dtype=torch.float32), 1e-4, tol=1e-5, maxiter=20_000)
    assert bool(torch.isfinite(r32.plan).all()) and r32.status.ok, r32.message


def test_float32_below_its_accuracy_stagnates_rather_than_spinning():
    a, b, C = _problem(40, 40, seed=9)
    r = sinkhorn(torch.tensor(a, dtype=torch.float32), torch.tensor(b, dtype=torch.float32),
                 torch.tensor(C, dtype=torch.float32), 5e-2, tol=1e-14, maxiter=20_000)
    assert r.status is OTStatus.STAGNATED, r.message
    assert r.iterations < 20_000


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"b": np.full(5, 0.3)}, "same total mass"),
        ({"a": np.array([0.5, -0.1, 0.2, 0.2, 0.2])}, "`a` has negative entries"),
        ({"C": np.ones((5, 6))}, "`b` has 5 entries but `C` has 6 columns"),
        ({"C": np.ones((4, 5))}, "`a` has 5 entries but `C` has 4 rows"),
        ({"C": np.where(np.eye(5) > 0, np.nan, 1.0)}, "`C` contains NaN"),
        ({"eps": 0.0}, r"`eps` must be > 0 and finite, got 0.0"),
        ({"eps": -1.0}, "`eps` must be > 0"),
        ({"eps": float("inf")}, "`eps` must be > 0"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(kwargs, match):
    args = {"a": np.full(5, 0.2), "b": np.full(5, 0.2), "C": np.ones((5, 5)), "eps": 0.1}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match) as info:
        sinkhorn(args["a"], args["b"], args["C"], args["eps"])
    assert str(info.value).startswith("sinkhorn: ")


def test_mixed_dtypes_and_options_are_refused():
    a = torch.full((4,), 0.25)
    with pytest.raises(TypeError, match="dtype"):
        sinkhorn(a, a, torch.ones(4, 4, dtype=torch.float64), 0.1)
    with pytest.raises(ValueError, match="`method`"):
        sinkhorn(a, a, torch.ones(4, 4), 0.1, method="fast")
    with pytest.raises(ValueError, match="`eps_scaling`"):
        sinkhorn(a, a, torch.ones(4, 4), 0.1, eps_scaling=2.0)
    with pytest.raises(ValueError, match="batch sizes differ"):
        sinkhorn(torch.full((2, 4), 0.25), torch.full((3, 4), 0.25), torch.ones(4, 4), 0.1)
