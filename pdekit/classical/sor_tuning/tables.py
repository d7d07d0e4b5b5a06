"""Cost tables: every instance of a sequence solved at every grid ``omega``, batched.

Shared by all methods of a comparison (the comparators need the whole table; the learners
look their choices up in it). Built on :func:`~pdekit.classical.sor_tuning.solves.sor_iterations`
(block-diagonal batches of SOR systems) and
:func:`~pdekit.classical.sor_tuning.solves.ssor_pcg_iterations` (batched right-hand sides
sharing a matrix).
"""

from __future__ import annotations

import numpy as np
import torch

from pdekit.classical.sor_tuning.comparators import CostTable, young_omega
from pdekit.classical.sor_tuning.learners import check_omegas, omega_grid
from pdekit.classical.sor_tuning.solves import sor_iterations, ssor_pcg_iterations

__all__ = ["pcg_cost_table", "sor_cost_table"]


def sor_cost_table(sequence, omegas=None, *, young: bool = True, rtol: float = 1e-8,
                   maxiter: int = 10_000, young_decimals: int = 3, echo=None) -> CostTable:
    """SOR iterations of every instance of ``sequence`` at every ``omega`` in ``omegas``.

    Parameters
    ----------
    sequence : ShiftedLaplacianSequence
        Or anything with ``len``, ``matrix(t)``, ``rhs`` ``(T, n)`` and ``shifts``.
    omegas : sequence of float, optional
        The grid (default: 20 values in [1, 1.95]).
    young : bool
        Also solve each instance at Young's ``omega`` (from ``sequence.jacobi_radii()``),
        rounded to ``young_decimals`` decimals so that instances with the same value share a
        batched solve; stored in ``table.extra["young"]`` / ``["young_omega"]``.

    Returns
    -------
    CostTable
    """
    omegas = omega_grid() if omegas is None else check_omegas("sor_cost_table", omegas)
    T = len(sequence)
    contexts = np.asarray(sequence.shifts, dtype=np.float64)
    order = np.argsort(contexts, kind="stable")  # similar systems converge together
    matrices = [sequence.matrix(int(t)) for t in order]
    rhs = np.asarray(sequence.rhs)[order]
    costs = np.empty((T, omegas.size), dtype=np.int64)
    for k, omega in enumerate(omegas):
        costs[order, k] = sor_iterations(matrices, rhs, float(omega), rtol=rtol, maxiter=maxiter)
        if echo is not None:
            echo(f"  omega={omega:.3f}: mean {costs[:, k].mean():.1f} iterations")
    extra = {}
    if young:
        values = np.round([young_omega(b) for b in sequence.jacobi_radii()], young_decimals)
        young_costs = np.empty(T, dtype=np.int64)
        for value in np.unique(values):
            members = np.flatnonzero(values[order] == value)
            young_costs[order[members]] = sor_iterations(
                [matrices[i] for i in members], rhs[members], float(value), rtol=rtol,
                maxiter=maxiter)
        extra = {"young": young_costs, "young_omega": values}
    return CostTable(omegas, costs, contexts, extra)


def pcg_cost_table(sequence, omegas=None, *, rtol: float = 1e-8, maxiter: int = 10_000,
                   echo=None) -> CostTable:
    """SSOR-PCG iterations of every instance of a sequence at every ``omega``.

    Instances that share a matrix (``sequence.matrix_groups()``) are solved as one batch
    of right-hand sides with warm starts ``x0``.

    Parameters
    ----------
    sequence : HeatEquationSequence
        Or anything with ``len``, ``matrix_groups()`` (lists of instance indices with one
        matrix), ``operator(t)``, ``rhs(t)``, ``x0(t)`` and ``contexts``.
    omegas : sequence of float, optional
        The grid (default: 20 values in [1, 1.95]).
    """
    omegas = omega_grid() if omegas is None else check_omegas("pcg_cost_table", omegas)
    costs = np.empty((len(sequence), omegas.size), dtype=np.int64)
    for g, members in enumerate(sequence.matrix_groups()):
        A = sequence.operator(members[0])
        b = torch.stack([sequence.rhs(t) for t in members])
        x0 = torch.stack([sequence.x0(t) for t in members])
        for k, omega in enumerate(omegas):
            costs[members, k] = ssor_pcg_iterations(A, b, float(omega), x0, rtol=rtol,
                                                    maxiter=maxiter)
        if echo is not None and (g + 1) % 200 == 0:
            echo(f"  {g + 1} matrices done")
    return CostTable(omegas, costs, np.asarray(sequence.contexts, dtype=np.float64))
