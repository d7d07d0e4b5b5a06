"""Bandit-tuned SOR (Khodak et al., ICLR 2024): learners, comparators, sequences, solves."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse
import torch

from pdekit.classical.sor_tuning import (
    ChebCB,
    CostTable,
    HeatEquationSequence,
    PooledChebCB,
    ShiftedLaplacianSequence,
    TsallisINF,
    TsallisINFCB,
    best_fixed_omega,
    chebyshev_features,
    fixed_omega_costs,
    instance_optimal_costs,
    jacobi_spectral_radius,
    omega_grid,
    pcg_cost_table,
    play,
    sor_cost_table,
    sor_iterations,
    ssor_pcg_iterations,
    young_omega,
)
from pdekit.linalg import CSROperator, cg, sor, ssor


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny systems: one thread is faster and avoids oversubscribing shared cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# -- learners on synthetic bandits with known losses ----------------------------------------

def _synthetic_cost(rng, arm: int, best: int) -> float:
    """Mean 20 for the best arm, 20 + 8 |arm - best| otherwise, with noise."""
    return float(20 + 8 * abs(arm - best) + rng.integers(-3, 4))


def test_tsallis_inf_concentrates_on_the_best_arm():
    omegas = np.linspace(1.0, 1.9, 10)
    learner = TsallisINF(omegas, seed=1)
    rng = np.random.default_rng(0)
    picks = []
    for _ in range(3000):
        omega = learner.choose()
        arm = int(np.argmin(abs(omegas - omega)))
        learner.update(omega, _synthetic_cost(rng, arm, best=6))
        picks.append(arm)
    late = np.array(picks[-1000:])
    assert np.mean(late == 6) > 0.6
    assert np.mean(abs(late - 6) <= 1) > 0.85
    assert learner.distribution().argmax() == 6
    # early on it explores: every arm was tried
    assert set(picks[:300]) == set(range(10))


@pytest.mark.parametrize("make", [
    lambda: TsallisINFCB(np.linspace(1.0, 1.9, 10), context_range=(0.0, 1.0), bins=2, seed=2),
    lambda: ChebCB(np.linspace(1.0, 1.9, 10), context_range=(0.0, 1.0), seed=2),
    lambda: PooledChebCB(np.linspace(1.0, 1.9, 10), context_range=(0.0, 1.0), seed=2),
], ids=["tsallis-inf-cb", "chebcb", "pooled-chebcb"])
def test_contextual_learners_follow_the_context(make):
    """The best arm is 2 for contexts below 1/2 and 7 above: each learner learns both."""
    learner = make()
    rng = np.random.default_rng(0)
    omegas = learner.omegas
    hits = {0: [], 1: []}
    for _ in range(2500):
        c = rng.uniform()
        best = 2 if c < 0.5 else 7
        omega = learner.choose(c)
        arm = int(np.argmin(abs(omegas - omega)))
        learner.update(omega, _synthetic_cost(rng, arm, best))
        hits[int(c >= 0.5)].append(arm == best)
    for side in (0, 1):
        assert np.mean(hits[side][-400:]) > 0.6, side


def test_learners_are_reproducible_from_their_seed():
    table = CostTable(omega_grid(), np.random.default_rng(0).integers(10, 100, (200, 20)),
                      np.random.default_rng(1).uniform(-0.15, 0.45, 200))
    for make in (lambda s: TsallisINF(seed=s),
                 lambda s: ChebCB(context_range=(-0.15, 0.45), seed=s),
                 lambda s: PooledChebCB(context_range=(-0.15, 0.45), seed=s)):
        a, b, c = play(make(3), table), play(make(3), table), play(make(4), table)
        np.testing.assert_array_equal(a.omegas, b.omegas)
        assert not np.array_equal(a.omegas, c.omegas)
        assert a.total == int(table.costs[np.arange(200), [table.arm(w) for w in a.omegas]].sum())


def test_chebyshev_features_match_numpy():
    x = np.linspace(-1, 1, 7)
    expected = np.polynomial.chebyshev.chebvander(x, 5)
    np.testing.assert_allclose(chebyshev_features(x, 5), expected, atol=1e-14)


# -- Young's formula, comparators ---------------------------------------------------------

def test_young_omega_matches_a_brute_search_within_one_grid_step():
    seq = ShiftedLaplacianSequence(40, "high", seed=3)
    picks = [int(np.argmin(abs(seq.shifts - v))) for v in (-0.12, 0.25)]
    matrices = [seq.matrix(t) for t in picks]
    rhs = seq.rhs[picks]
    step = 0.01
    grid = np.round(np.arange(1.35, 1.85 + step / 2, step), 2)
    counts = np.stack([sor_iterations(matrices, rhs, w) for w in grid], axis=1)
    for j, t in enumerate(picks):
        beta = jacobi_spectral_radius(matrices[j])
        assert beta == pytest.approx(seq.jacobi_radii()[t], rel=1e-12)
        omega = young_omega(beta)
        brute = grid[np.argmin(counts[j])]
        assert abs(omega - brute) <= step + 1e-12, (seq.shifts[t], omega, brute)
        at_young = sor_iterations([matrices[j]], rhs[j:j + 1], omega)[0]
        assert at_young <= 1.1 * counts[j].min()


def test_cost_table_comparators_are_consistent():
    seq = ShiftedLaplacianSequence(6, "low", seed=5)
    table = sor_cost_table(seq)
    assert table.costs.shape == (6, 20)
    omega, best = best_fixed_omega(table)
    for w in table.omegas:
        assert best.sum() <= fixed_omega_costs(table, w).sum()
    optimal = instance_optimal_costs(table)
    assert np.all(optimal <= table.costs.min(axis=1))
    assert np.all(optimal <= table.extra["young"])
    # a lookup is what a solve would give
    for t in (0, 5):
        direct = sor(seq[t].operator(), torch.from_numpy(seq.rhs[t]), omega, rtol=1e-8,
                     maxiter=10_000, ordering="natural")
        assert direct.iterations == table.cost(t, omega)


def test_batched_sor_iterations_equal_single_solves():
    rng = np.random.default_rng(0)
    base = scipy.sparse.random(30, 30, density=0.1, random_state=1)
    matrices = [(base + base.T + (8 + s) * scipy.sparse.identity(30)).tocsr()
                for s in rng.uniform(0, 2, 5)]
    rhs = rng.standard_normal((5, 30))
    rhs[3] = 0.0
    batched = sor_iterations(matrices, rhs, 1.3, round_sweeps=2)
    for j in range(5):
        single = sor(CSROperator.from_scipy(matrices[j]), torch.from_numpy(rhs[j]), 1.3,
                     rtol=1e-8, maxiter=10_000, ordering="natural")
        assert batched[j] == single.iterations
    assert batched[3] == 0


def test_batched_pcg_iterations_equal_single_solves():
    seq = HeatEquationSequence(8, 6, dt=1e-3)
    A = seq.operator(4)
    b = torch.stack([seq.rhs(4), 3 * seq.rhs(4) + 1])
    x0 = torch.stack([seq.x0(4), torch.zeros_like(seq.x0(4))])
    counts = ssor_pcg_iterations(A, b, 1.4, x0)
    for j in range(2):
        single = cg(A, b[j], x0[j], rtol=1e-8, M=ssor(A, 1.4))
        assert counts[j] == single.iterations


# -- sequences -----------------------------------------------------------------------------

def test_shifted_sequence_is_reproducible_and_follows_the_paper():
    a = ShiftedLaplacianSequence(300, "high", seed=7)
    b = ShiftedLaplacianSequence(300, "high", seed=7)
    c = ShiftedLaplacianSequence(300, "high", seed=8)
    np.testing.assert_array_equal(a.shifts, b.shifts)
    np.testing.assert_array_equal(a.rhs, b.rhs)
    assert not np.array_equal(a.shifts, c.shifts)
    assert a.rhs.shape == (300, 100)
    assert np.all(np.linalg.norm(a.rhs, axis=1) <= 10.0)
    assert np.all((a.shifts >= -0.15) & (a.shifts <= 0.45))
    low = ShiftedLaplacianSequence(2000, "low", seed=0)
    # -0.15 + 0.6 Beta(2, 6) has mean -0.15 + 0.6/4 = 0; Beta(0.5, 1.5) also mean 1/4
    assert abs(low.shifts.mean()) < 0.01
    assert low.shifts.std() < ShiftedLaplacianSequence(2000, "high", seed=0).shifts.std()
    A = a.matrix(0).toarray()
    assert A[0, 0] == pytest.approx(4.0 + a.shifts[0])
    assert A[0, 1] == -1.0 and A[0, 10] == -1.0


def test_heat_sequence_is_deterministic_and_solves_crank_nicolson():
    a, b = HeatEquationSequence(10, 40), HeatEquationSequence(10, 40)
    np.testing.assert_array_equal(a.contexts, b.contexts)
    for t in (0, 17, 39):
        torch.testing.assert_close(a.rhs(t), b.rhs(t), rtol=0, atol=0)
        # the reference state solves the step's system
        A = a.operator(t)
        residual = torch.linalg.vector_norm(a.rhs(t) - A.matvec(a.solution(t)))
        assert residual <= 1e-11 * torch.linalg.vector_norm(a.rhs(t))
    assert np.all(a.contexts >= 0)
    # kappa is 1-periodic: with dt = 0.25 steps 0 and 4 share a matrix exactly
    periodic = HeatEquationSequence(6, 9, dt=0.25)
    groups = [g.tolist() for g in periodic.matrix_groups()]
    assert [0, 4, 8] in groups
    torch.testing.assert_close(periodic.operator(0).diagonal(), periodic.operator(4).diagonal(),
                               rtol=0, atol=0)


def test_pcg_cost_table_on_a_small_heat_sequence():
    seq = HeatEquationSequence(8, 12, dt=0.1)
    table = pcg_cost_table(seq, omegas=[1.0, 1.5])
    for t in (0, 11):
        A = seq.operator(t)
        single = cg(A, seq.rhs(t), seq.x0(t), rtol=1e-8, M=ssor(A, 1.5))
        assert table.cost(t, 1.5) == single.iterations


# -- bad input -----------------------------------------------------------------------------

def test_bad_input_gets_clear_errors():
    with pytest.raises(ValueError, match=r"TsallisINF: `omegas` must lie in \(0, 2\)"):
        TsallisINF([1.0, 2.0])
    with pytest.raises(ValueError, match="omegas"):
        ChebCB([0.0, 1.5], context_range=(0, 1))
    with pytest.raises(ValueError, match="instances"):
        ShiftedLaplacianSequence(0)
    with pytest.raises(ValueError, match="instances"):
        HeatEquationSequence(10, 0)
    with pytest.raises(ValueError, match="empty"):
        sor_iterations([], np.zeros((0, 4)), 1.2)
    with pytest.raises(ValueError, match="variance"):
        ShiftedLaplacianSequence(5, "medium")
    with pytest.raises(ValueError, match="context_range"):
        ChebCB(context_range=(1.0, 1.0))
    learner = ChebCB(context_range=(0.0, 1.0))
    with pytest.raises(ValueError, match="context"):
        learner.choose(None)
    with pytest.raises(RuntimeError, match="choose"):
        learner.update(1.0, 10)
    omega = learner.choose(0.5)
    with pytest.raises(ValueError, match="omega"):
        learner.update(omega + 0.05, 10)
    with pytest.raises(ValueError, match="positive integer"):
        play(TsallisINF(), lambda t, w: 1, instances=0)


def test_non_spd_systems_are_refused_by_ssor_pcg():
    indefinite = scipy.sparse.csr_matrix(np.array([[1.0, 2.0, 0.0], [2.0, 1.0, 0.0],
                                                   [0.0, 0.0, 1.0]]))
    b = torch.ones(3, dtype=torch.float64)
    with pytest.raises(ValueError, match="not positive definite"):
        ssor_pcg_iterations(indefinite, b, 1.0)
    negative = scipy.sparse.diags([-1.0, 2.0, 3.0]).tocsr()
    with pytest.raises(ValueError, match="not positive definite"):
        ssor_pcg_iterations(negative, b, 1.0)
    nonsymmetric = scipy.sparse.csr_matrix(np.array([[2.0, 1.0, 0.0], [0.0, 2.0, 0.0],
                                                     [0.0, 0.0, 2.0]]))
    with pytest.raises(ValueError, match="not symmetric"):
        ssor_pcg_iterations(nonsymmetric, b, 1.0)
    with pytest.raises(ValueError, match="omega"):
        ssor_pcg_iterations(negative, b, 2.5)


# -- the paper's targets, at a reduced size ------------------------------------------------

@pytest.mark.slow
def test_learners_beat_the_reference_points_on_the_shifted_sequence():
    seq = ShiftedLaplacianSequence(1500, "high", seed=11)
    table = sor_cost_table(seq, young=False)
    best = best_fixed_omega(table)[1].sum()
    optimal = instance_optimal_costs(table).sum()
    cheb = play(ChebCB(context_range=seq.context_range, seed=0), table).total
    pooled = play(PooledChebCB(context_range=seq.context_range, seed=0), table).total
    assert cheb < best
    assert pooled < 0.8 * best
    assert pooled < 1.3 * optimal
