"""Tune SOR's relaxation factor online across a sequence of shifted Laplacian systems.

Khodak et al., "Learning to Relax", ICLR 2024: before each solve a bandit picks omega; the
only feedback is the iteration count. Runs in about a minute on a laptop CPU;
``--quick`` plays 20 systems instead of 200 (seconds).
"""

import sys

import torch

from pdekit.classical.sor_tuning import (
    ChebCB,
    PooledChebCB,
    ShiftedLaplacianSequence,
    TsallisINF,
    best_fixed_omega,
    instance_optimal_costs,
    play,
    sor_cost_table,
)

torch.set_num_threads(1)  # thousands of tiny solves: one thread is fastest
# 200 systems (A + c_t I) x = b_t on a 10 x 10 grid, c_t = -0.15 + 0.6 Beta(0.5, 1.5)
count = 20 if "--quick" in sys.argv else 200
sequence = ShiftedLaplacianSequence(count, "high", seed=0)
# SOR iterations of every instance at 20 values of omega in [1, 1.95] (batched solves),
# shared by every method: a learner's choice then costs a lookup
table = sor_cost_table(sequence, young=False)

omega, best = best_fixed_omega(table)
print(f"omega = 1 (Gauss-Seidel): {table.costs[:, 0].mean():6.1f} iterations per system")
print(f"best fixed omega = {omega:.2f}: {best.mean():6.1f}")
print(f"instance-optimal (grid):  {instance_optimal_costs(table).mean():5.1f}")
for learner in (TsallisINF(seed=0),
                ChebCB(context_range=sequence.context_range, seed=0),
                PooledChebCB(context_range=sequence.context_range, seed=0)):
    result = play(learner, table)
    print(f"{type(learner).__name__:>12}: {result.costs.mean():6.1f} "
          f"(last {count // 4} systems: {result.costs[-(count // 4):].mean():.1f})")
