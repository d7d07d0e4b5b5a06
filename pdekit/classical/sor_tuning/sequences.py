"""The synthetic sequence of the paper: a diagonally shifted Laplacian, ``A_t = A + c_t I``.

Khodak et al., "Learning to Relax", ICLR 2024 (arXiv 2310.02246), Sec. 2 and 5: ``A`` is the
5-point Laplacian on a 10 x 10 interior grid (diagonal 4, off-diagonals -1, unscaled),
``c_t = -0.15 + 0.6 Beta(0.5, 1.5)`` ("high variance") or ``Beta(2, 6)`` ("low variance"),
``b_t ~ N(0, I)`` conditioned on ``||b_t|| <= sqrt(n)`` (rejection sampling), and the
context of instance ``t`` is its shift ``c_t``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse
import torch

from pdekit.linalg import CSROperator, StencilOperator

__all__ = ["SHIFT_DISTRIBUTIONS", "Instance", "ShiftedLaplacianSequence", "check_length"]

# name -> (Beta a, Beta b); c = -0.15 + 0.6 * Beta(a, b)
SHIFT_DISTRIBUTIONS = {"high": (0.5, 1.5), "low": (2.0, 6.0)}
SHIFT_OFFSET, SHIFT_WIDTH = -0.15, 0.6


def check_length(fn: str, instances) -> int:
    """``instances`` as a positive int, or an error naming ``fn`` (an empty sequence)."""
    if isinstance(instances, bool) or not isinstance(instances, (int, np.integer)):
        raise TypeError(f"{fn}: `instances` must be an int, got {type(instances).__name__}")
    if instances < 1:
        raise ValueError(f"{fn}: `instances` must be >= 1 (an empty sequence has nothing to "
                         f"learn from), got {instances}")
    return int(instances)


@dataclass
class Instance:
    """One linear system of a sequence: ``A x = b`` from ``x0``, with a scalar ``context``."""

    index: int
    matrix: scipy.sparse.csr_matrix
    b: np.ndarray
    context: float
    x0: np.ndarray | None = None

    def operator(self) -> CSROperator:
        """``A`` as a :class:`~pdekit.linalg.CSROperator` (float64, CPU)."""
        return CSROperator.from_scipy(self.matrix, dtype=torch.float64)


class ShiftedLaplacianSequence:
    """``T`` instances ``(A + c_t I) x = b_t`` of the paper's synthetic study, from a seed.

    Parameters
    ----------
    instances : int
        ``T`` (the paper: 5,000).
    variance : {"high", "low"}
        Shift distribution: ``c = -0.15 + 0.6 Beta(0.5, 1.5)`` or ``Beta(2, 6)``.
    seed : int
        Seeds the shifts and the right-hand sides (the same seed gives the same sequence).
    grid : int
        Interior points per side (10 in the paper: ``n = 100``).

    Attributes
    ----------
    shifts : numpy.ndarray ``(T,)``
        The contexts ``c_t``.
    rhs : numpy.ndarray ``(T, n)``
        The right-hand sides.
    context_range : (float, float)
        The support of ``c``: (-0.15, 0.45).
    """

    def __init__(self, instances: int, variance: str = "high", *, seed: int = 0,
                 grid: int = 10) -> None:
        fn = "ShiftedLaplacianSequence"
        self.length = check_length(fn, instances)
        if variance not in SHIFT_DISTRIBUTIONS:
            raise ValueError(f"{fn}: `variance` must be one of {sorted(SHIFT_DISTRIBUTIONS)}, "
                             f"got {variance!r}")
        if isinstance(grid, bool) or not isinstance(grid, int) or grid < 2:
            raise ValueError(f"{fn}: `grid` must be an integer >= 2, got {grid!r}")
        self.variance, self.seed, self.grid = variance, seed, grid
        self.laplacian = StencilOperator((grid, grid), dtype=torch.float64).to_scipy()
        n = grid * grid
        rng = np.random.default_rng(seed)
        a, b = SHIFT_DISTRIBUTIONS[variance]
        self.shifts = SHIFT_OFFSET + SHIFT_WIDTH * rng.beta(a, b, size=self.length)
        self.rhs = np.empty((self.length, n))
        for t in range(self.length):  # N(0, I) conditioned on ||b|| <= sqrt(n)
            while True:
                sample = rng.standard_normal(n)
                if np.linalg.norm(sample) <= np.sqrt(n):
                    break
            self.rhs[t] = sample
        self.context_range = (SHIFT_OFFSET, SHIFT_OFFSET + SHIFT_WIDTH)
        self.name = f"shifted-laplacian-{grid}x{grid}-{variance}-variance"

    def __len__(self) -> int:
        return self.length

    def matrix(self, t: int) -> scipy.sparse.csr_matrix:
        """``A + c_t I`` (SciPy CSR)."""
        return (self.laplacian + self.shifts[t] * scipy.sparse.identity(
            self.laplacian.shape[0], format="csr")).tocsr()

    def __getitem__(self, t: int) -> Instance:
        if not -self.length <= t < self.length:
            raise IndexError(f"ShiftedLaplacianSequence: index {t} out of range ({self.length})")
        t = t % self.length
        return Instance(t, self.matrix(t), self.rhs[t], float(self.shifts[t]))

    def __iter__(self):
        return (self[t] for t in range(self.length))

    def jacobi_radii(self) -> np.ndarray:
        """``beta_t = rho(I - D_t^{-1} A_t)`` for every instance, exactly.

        With ``D_t = (d + c_t) I`` (``d = 4``): ``I - D_t^{-1} A_t = (d I - A) / (d + c_t)``,
        so ``beta_t = max |d - lambda(A)| / (d + c_t)``, and the Laplacian's eigenvalues are
        ``4 - 2 cos(i pi / (g + 1)) - 2 cos(j pi / (g + 1))``.
        """
        d = 4.0
        extreme = 4.0 * np.cos(np.pi / (self.grid + 1))  # max |d - lambda|
        return extreme / (d + self.shifts)
