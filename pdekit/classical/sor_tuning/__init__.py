"""Online tuning of the SOR / SSOR-PCG relaxation factor across a sequence of systems.

Khodak, Chow, Balcan, Talwalkar, "Learning to Relax: Setting Solver Parameters Across a
Sequence of Linear System Instances", ICLR 2024 (arXiv 2310.02246). Before each solve a
learner picks ``omega``; its only feedback is the iteration count.

Example::

    from pdekit.classical.sor_tuning import (ChebCB, ShiftedLaplacianSequence,
                                             best_fixed_omega, play, sor_cost_table)
    seq = ShiftedLaplacianSequence(500, "high", seed=0)
    table = sor_cost_table(seq)        # every instance at every grid omega, batched solves
    result = play(ChebCB(context_range=seq.context_range, seed=0), table)
    result.total, best_fixed_omega(table)[1].sum()

A learner can also drive real solves: ``play(learner, cost, contexts)`` with
``cost(t, omega)`` solving instance ``t`` and returning its iteration count.
"""

from pdekit.classical.sor_tuning.comparators import (
    CostTable,
    best_fixed_omega,
    fixed_omega_costs,
    instance_optimal_costs,
    jacobi_spectral_radius,
    young_omega,
)
from pdekit.classical.sor_tuning.heat import HeatEquationSequence, diffusivity
from pdekit.classical.sor_tuning.learners import (
    ChebCB,
    Learner,
    TsallisINF,
    TsallisINFCB,
    chebyshev_features,
    omega_grid,
)
from pdekit.classical.sor_tuning.play import PlayResult, play
from pdekit.classical.sor_tuning.pooled import PooledChebCB
from pdekit.classical.sor_tuning.sequences import Instance, ShiftedLaplacianSequence
from pdekit.classical.sor_tuning.solves import sor_iterations, ssor_pcg_iterations
from pdekit.classical.sor_tuning.tables import pcg_cost_table, sor_cost_table

__all__ = [
    "ChebCB",
    "CostTable",
    "HeatEquationSequence",
    "Instance",
    "Learner",
    "PlayResult",
    "PooledChebCB",
    "ShiftedLaplacianSequence",
    "TsallisINF",
    "TsallisINFCB",
    "best_fixed_omega",
    "chebyshev_features",
    "diffusivity",
    "fixed_omega_costs",
    "instance_optimal_costs",
    "jacobi_spectral_radius",
    "omega_grid",
    "pcg_cost_table",
    "play",
    "sor_cost_table",
    "sor_iterations",
    "ssor_pcg_iterations",
    "young_omega",
]
