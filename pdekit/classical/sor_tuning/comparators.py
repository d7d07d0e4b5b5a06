"""Comparators for online ``omega`` tuning: fixed ``omega``, the best fixed ``omega`` in
hindsight, and the instance-optimal ``omega`` (Khodak et al., ICLR 2024, Sec. 2).

All work on a :class:`CostTable`: the iteration count of every instance at every grid value
of ``omega`` (computed once by batched solves and shared by every method, since the counts
are deterministic given ``(A_t, b_t, x0_t, omega)``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse
import scipy.sparse.linalg

from pdekit.classical.sor_tuning.learners import check_omegas

__all__ = [
    "CostTable",
    "best_fixed_omega",
    "fixed_omega_costs",
    "instance_optimal_costs",
    "jacobi_spectral_radius",
    "young_omega",
]


def jacobi_spectral_radius(matrix) -> float:
    """``beta = rho(I - D^{-1} A)`` of a symmetric matrix with a positive diagonal.

    Computed from the extreme eigenvalues of ``D^{-1/2} A D^{-1/2}`` (similar to
    ``D^{-1} A``): ``beta = max(|1 - lambda_min|, |1 - lambda_max|)``.
    """
    matrix = scipy.sparse.csr_matrix(matrix, dtype=np.float64)
    diag = matrix.diagonal()
    if not np.all(diag > 0):
        raise ValueError("jacobi_spectral_radius: `matrix` needs a positive diagonal")
    scale = scipy.sparse.diags(1.0 / np.sqrt(diag))
    scaled = scale @ matrix @ scale
    n = matrix.shape[0]
    if n <= 400:
        values = np.linalg.eigvalsh(scaled.toarray())
        low, high = values[0], values[-1]
    else:
        high = scipy.sparse.linalg.eigsh(scaled, k=1, which="LA", return_eigenvectors=False)[0]
        low = scipy.sparse.linalg.eigsh(scaled, k=1, which="SA", return_eigenvectors=False)[0]
    return float(max(abs(1.0 - low), abs(1.0 - high)))


def young_omega(beta: float) -> float:
    """Young's optimal SOR factor ``1 + (beta / (1 + sqrt(1 - beta^2)))^2``.

    Young (1954); Khodak et al. 2024, Sec. 2. Optimal for consistently ordered matrices with
    Jacobi iteration matrix of spectral radius ``beta < 1`` (e.g. the 5-point Laplacian,
    shifted, in natural order).
    """
    beta = float(beta)
    if not (0.0 <= beta < 1.0):
        raise ValueError(f"young_omega: `beta` must lie in [0, 1), got {beta}")
    return 1.0 + (beta / (1.0 + math.sqrt(1.0 - beta * beta))) ** 2


@dataclass
class CostTable:
    """Iteration counts ``costs[t, k]`` of instance ``t`` solved with ``omegas[k]``.

    Attributes
    ----------
    omegas : numpy.ndarray ``(K,)``
    costs : numpy.ndarray ``(T, K)`` of int64
    contexts : numpy.ndarray ``(T,)``
    extra : dict
        Per-instance costs of other choices, e.g. ``"young"`` (Young's ``omega``), with the
        ``omega`` values under ``"young_omega"``.
    """

    omegas: np.ndarray
    costs: np.ndarray
    contexts: np.ndarray
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.omegas = check_omegas("CostTable", self.omegas)
        self.costs = np.asarray(self.costs)
        if self.costs.ndim != 2 or self.costs.shape[1] != self.omegas.size or self.costs.shape[0] == 0:
            raise ValueError(f"CostTable: `costs` must have shape (T >= 1, {self.omegas.size}), "
                             f"got {self.costs.shape}")

    def __len__(self) -> int:
        return self.costs.shape[0]

    def arm(self, omega: float) -> int:
        """Index of ``omega`` in the grid (an error if it is not a grid value)."""
        hits = np.flatnonzero(np.isclose(self.omegas, float(omega), rtol=0, atol=1e-12))
        if hits.size == 0:
            raise KeyError(f"CostTable.arm: omega={omega} is not on the grid {self.omegas.tolist()}")
        return int(hits[0])

    def cost(self, t: int, omega: float) -> int:
        """Iterations of instance ``t`` at grid value ``omega`` (a lookup)."""
        return int(self.costs[t, self.arm(omega)])


def fixed_omega_costs(table: CostTable, omega: float) -> np.ndarray:
    """Per-instance costs of always playing ``omega`` (a grid value)."""
    return table.costs[:, table.arm(omega)].copy()


def best_fixed_omega(table: CostTable) -> tuple[float, np.ndarray]:
    """The grid ``omega`` with the least total cost in hindsight, and its per-instance costs."""
    k = int(np.argmin(table.costs.sum(axis=0)))
    return float(table.omegas[k]), table.costs[:, k].copy()


def instance_optimal_costs(table: CostTable, *, include_young: bool = True) -> np.ndarray:
    """Per-instance least cost: the best grid ``omega`` for each instance, and Young's
    ``omega`` where the table has it (``extra["young"]``)."""
    best = table.costs.min(axis=1)
    if include_young and "young" in table.extra:
        best = np.minimum(best, table.extra["young"])
    return best
