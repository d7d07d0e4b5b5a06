"""Running a learner over a sequence: choose ``omega``, pay the iterations, feed them back."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pdekit.classical.sor_tuning.comparators import CostTable
from pdekit.classical.sor_tuning.learners import Learner

__all__ = ["PlayResult", "play"]


@dataclass
class PlayResult:
    """What a learner did on a sequence.

    Attributes
    ----------
    omegas : numpy.ndarray ``(T,)``
        The ``omega`` chosen for each instance.
    costs : numpy.ndarray ``(T,)``
        The iterations each solve took.
    seconds : float
        Wall time of the whole run (the learner's own work plus the solves or lookups).
    """

    omegas: np.ndarray
    costs: np.ndarray
    seconds: float

    @property
    def total(self) -> int:
        return int(self.costs.sum())

    def cumulative(self) -> np.ndarray:
        """Cumulative iterations after each instance."""
        return np.cumsum(self.costs)


def play(
    learner: Learner,
    costs: CostTable | Callable[[int, float], int],
    contexts=None,
    *,
    instances: int | None = None,
) -> PlayResult:
    """Play ``learner`` over a sequence of instances, in order.

    Parameters
    ----------
    learner : Learner
        Anything with ``choose(context) -> omega`` and ``update(omega, cost)``.
    costs : CostTable or callable
        Either a table of precomputed iteration counts (playing a grid ``omega`` is then a
        lookup: SOR and PCG counts are deterministic given the instance and ``omega``), or
        ``cost(t, omega) -> iterations`` that solves instance ``t`` with ``omega``.
    contexts : array-like, optional
        The contexts ``c_t`` (default: the table's).
    instances : int, optional
        How many instances to play (default: all of the table, or ``len(contexts)``).

    Returns
    -------
    PlayResult
    """
    fn = "play"
    if isinstance(costs, CostTable):
        table = costs
        contexts = table.contexts if contexts is None else contexts

        def cost(t: int, omega: float) -> int:
            return table.cost(t, omega)
    elif callable(costs):
        cost = costs
    else:
        raise TypeError(f"{fn}: `costs` must be a CostTable or a callable, got {type(costs).__name__}")
    if contexts is not None:
        contexts = np.asarray(contexts, dtype=np.float64)
    if instances is None:
        if contexts is None:
            raise ValueError(f"{fn}: give `instances` (or `contexts`) with a cost callable")
        instances = len(contexts)
    if isinstance(instances, bool) or not isinstance(instances, (int, np.integer)) or instances < 1:
        raise ValueError(f"{fn}: `instances` must be a positive integer (a non-empty sequence), "
                         f"got {instances!r}")
    if contexts is not None and len(contexts) < instances:
        raise ValueError(f"{fn}: {instances} instances but only {len(contexts)} contexts")
    if getattr(learner, "contextual", False) and contexts is None:
        raise ValueError(f"{fn}: {type(learner).__name__} is contextual; pass `contexts`")
    omegas = np.empty(instances)
    paid = np.empty(instances, dtype=np.int64)
    start = time.perf_counter()
    for t in range(instances):
        context = None if contexts is None else float(contexts[t])
        omega = learner.choose(context)
        paid[t] = cost(t, omega)
        learner.update(omega, paid[t])
        omegas[t] = omega
    return PlayResult(omegas, paid, time.perf_counter() - start)
