"""Online learners that pick the SOR relaxation factor ``omega`` from iteration counts.

Khodak, Chow, Balcan, Talwalkar, "Learning to Relax: Setting Solver Parameters Across a
Sequence of Linear System Instances", ICLR 2024 (arXiv 2310.02246). Every learner has the
same two calls: ``choose(context) -> omega`` before a solve, ``update(omega, cost)`` after
it, where ``cost`` is the solver's iteration count (the only feedback). Learners draw from
their own seeded generator, so a run is reproducible.

* :class:`TsallisINF`: 1/2-Tsallis-INF over a grid of ``omega`` (Sec. 3, Alg. 1; Zimmert &
  Seldin, 2021), no context; regret against the best fixed ``omega`` is sublinear.
* :class:`TsallisINFCB`: one Tsallis-INF per bin of a scalar context (Sec. 4).
* :class:`ChebCB`: a contextual bandit with one Chebyshev regression per arm and
  inverse-gap-weighted exploration (Sec. 4, Alg. 2; SquareCB of Foster & Rakhlin, 2020).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import scipy.optimize

__all__ = [
    "ChebCB",
    "Learner",
    "TsallisINF",
    "TsallisINFCB",
    "chebyshev_features",
    "check_omegas",
    "omega_grid",
]


def omega_grid(num: int = 20, low: float = 1.0, high: float = 1.95) -> np.ndarray:
    """The paper's action set: ``num`` equispaced values of ``omega`` in ``[low, high]``."""
    if isinstance(num, bool) or not isinstance(num, int) or num < 1:
        raise ValueError(f"omega_grid: `num` must be a positive integer, got {num!r}")
    return check_omegas("omega_grid", np.linspace(low, high, num))


def check_omegas(fn: str, omegas) -> np.ndarray:
    """``omegas`` as a 1-D float array, or an error unless every value lies in (0, 2)."""
    array = np.atleast_1d(np.asarray(omegas, dtype=np.float64))
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{fn}: `omegas` must be a non-empty 1-D sequence, got shape {array.shape}")
    bad = array[~((array > 0.0) & (array < 2.0))]
    if bad.size:
        raise ValueError(
            f"{fn}: `omegas` must lie in (0, 2) (SOR diverges outside it), got {bad.tolist()}"
        )
    return array


def chebyshev_features(x, degree: int) -> np.ndarray:
    """``[T_0(x), ..., T_degree(x)]`` for ``x`` in [-1, 1] (values outside are clipped).

    Shape: ``x`` of shape ``(...)`` gives ``(..., degree + 1)``.
    """
    x = np.clip(np.asarray(x, dtype=np.float64), -1.0, 1.0)
    out = np.empty((*x.shape, degree + 1))
    out[..., 0] = 1.0
    if degree >= 1:
        out[..., 1] = x
    for j in range(2, degree + 1):
        out[..., j] = 2.0 * x * out[..., j - 1] - out[..., j - 2]
    return out


def _check_range(fn: str, context_range) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in context_range)
    except (TypeError, ValueError):
        raise ValueError(f"{fn}: `context_range` must be a pair (low, high), got {context_range!r}") from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"{fn}: `context_range` must satisfy low < high, got {(low, high)}")
    return low, high


class Learner:
    """The interface: ``choose(context) -> omega``, then ``update(omega, cost)``.

    Subclasses implement :meth:`_choose` (return an arm index) and :meth:`_update`.
    The base class checks the calling order and that ``update`` gets the chosen ``omega``.

    Parameters
    ----------
    omegas : sequence of float
        The arms (values of ``omega`` in (0, 2)); default :func:`omega_grid`.
    seed : int
        Seed of the learner's random generator.
    """

    contextual = False

    def __init__(self, omegas: Sequence[float] | None = None, *, seed: int = 0) -> None:
        name = type(self).__name__
        self.omegas = omega_grid() if omegas is None else check_omegas(name, omegas)
        self.rng = np.random.default_rng(seed)
        self.t = 0  # completed rounds
        self._pending: int | None = None

    @property
    def num_arms(self) -> int:
        return self.omegas.size

    def choose(self, context: float | None = None) -> float:
        """Pick ``omega`` for the next system (``context``: its scalar context, if any)."""
        name = type(self).__name__
        if self._pending is not None:
            raise RuntimeError(f"{name}.choose: call `update` with the cost of the last choice first")
        if self.contextual:
            if context is None or not math.isfinite(float(context)):
                raise ValueError(f"{name}.choose: `context` must be a finite number, got {context!r}")
            context = float(context)
        self._pending = int(self._choose(context))
        return float(self.omegas[self._pending])

    def update(self, omega: float, cost: float) -> None:
        """Feed back the iteration count ``cost`` of the solve that used ``omega``."""
        name = type(self).__name__
        if self._pending is None:
            raise RuntimeError(f"{name}.update: call `choose` first")
        if float(omega) != float(self.omegas[self._pending]):
            raise ValueError(
                f"{name}.update: `omega` must be the value `choose` returned "
                f"({self.omegas[self._pending]}), got {omega}"
            )
        cost = float(cost)
        if not (math.isfinite(cost) and cost >= 0):
            raise ValueError(f"{name}.update: `cost` must be a finite count >= 0, got {cost}")
        arm, self._pending = self._pending, None
        self._update(arm, cost)
        self.t += 1

    def _choose(self, context: float | None) -> int:
        raise NotImplementedError

    def _update(self, arm: int, cost: float) -> None:
        raise NotImplementedError


class TsallisINF(Learner):
    """1/2-Tsallis-INF over a grid of ``omega`` (Khodak et al. 2024, Sec. 3, Alg. 1).

    Online mirror descent with the 1/2-Tsallis entropy (Zimmert & Seldin, 2021), with
    learning rate ``eta_t = 2 / sqrt(t)`` and importance-weighted loss estimates: after arm
    ``i`` is played with probability ``p_i`` and costs ``l_t`` iterations,
    ``Lhat_i += (l_t - 1) / p_i``. Losses are normalised by the running scale
    ``s_t = mean(l_1..l_t) - 1`` (the iteration counts have no a-priori bound), and
    ``p_i = 4 / (eta_t (Lhat_i / s_t - x))^2`` with ``x`` set by Newton steps so that
    ``sum p_i = 1``. Expected regret against the best fixed ``omega`` is ``O(sqrt(K T))``
    in normalised units (Thm. 3.1 of the paper).

    Parameters
    ----------
    omegas : sequence of float, optional
        The arms; default 20 values in [1, 1.95].
    seed : int
        Seed of the sampling.

    Other Parameters
    ----------------
    newton_steps : int
        Newton steps for the normalisation ``x`` (default 20, as the authors' code).
    """

    def __init__(self, omegas=None, *, seed: int = 0, newton_steps: int = 20) -> None:
        super().__init__(omegas, seed=seed)
        self.newton_steps = int(newton_steps)
        self.cumulative = np.zeros(self.num_arms)  # Lhat, unnormalised
        self.loss_sum = 0.0
        self.scale = 1.0
        self.probabilities = np.full(self.num_arms, 1.0 / self.num_arms)

    def distribution(self) -> np.ndarray:
        """The sampling distribution for the next round."""
        eta = 2.0 / math.sqrt(self.t + 1)
        losses = self.cumulative / self.scale
        losses = losses - losses.min()  # shift invariance: keeps x bounded
        x = -1.0
        for _ in range(self.newton_steps):
            p = 4.0 / (eta * (losses - x)) ** 2
            x -= (p.sum() - 1.0) / (eta * np.sum(p**1.5))
            x = min(x, -1e-12)  # x < min(losses) = 0 keeps every p_i finite
        p = 4.0 / (eta * (losses - x)) ** 2
        total = p.sum()
        if not (np.isfinite(total) and total > 0):
            return np.full(self.num_arms, 1.0 / self.num_arms)
        return p / total

    def _choose(self, context) -> int:
        self.probabilities = self.distribution()
        return int(self.rng.choice(self.num_arms, p=self.probabilities))

    def _update(self, arm: int, cost: float) -> None:
        self.cumulative[arm] += (cost - 1.0) / self.probabilities[arm]
        self.loss_sum += cost
        self.scale = max(self.loss_sum / (self.t + 1) - 1.0, 1e-12)


class TsallisINFCB(Learner):
    """Tsallis-INF per context bin (Khodak et al. 2024, Sec. 4): the context interval is
    split into ``bins`` equal bins and each bin runs its own :class:`TsallisINF`.

    Parameters
    ----------
    omegas : sequence of float, optional
        The arms.
    context_range : (float, float)
        Interval of the context; contexts outside go to the nearest bin.
    bins : int
        Number of bins (5 in the paper's synthetic study, 6 for the heat equation).
    seed : int
        Seed (each bin's learner gets its own stream).
    """

    contextual = True

    def __init__(self, omegas=None, *, context_range, bins: int = 5, seed: int = 0) -> None:
        super().__init__(omegas, seed=seed)
        self.context_range = _check_range("TsallisINFCB", context_range)
        if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
            raise ValueError(f"TsallisINFCB: `bins` must be a positive integer, got {bins!r}")
        low, high = self.context_range
        self.centers = low + (high - low) * (np.arange(bins) + 0.5) / bins
        seeds = np.random.SeedSequence(seed).spawn(bins)
        self.learners = [
            TsallisINF(self.omegas, seed=int(s.generate_state(1)[0])) for s in seeds
        ]
        self._bin = 0

    def _choose(self, context: float) -> int:
        self._bin = int(np.argmin(np.abs(self.centers - context)))
        learner = self.learners[self._bin]
        learner.choose()
        return learner._pending

    def _update(self, arm: int, cost: float) -> None:
        learner = self.learners[self._bin]
        learner.update(float(self.omegas[arm]), cost)


class ChebCB(Learner):
    """Chebyshev contextual bandit (Khodak et al. 2024, Sec. 4 and Appendix; the authors'
    ``ChebCB``).

    Each arm ``i`` models the normalised cost as ``theta_i . phi(c)`` with Chebyshev
    features ``phi(c) = [T_0(x), ..., T_{m-1}(x)]``, ``x = 2 (c - a) / (b - a) - 1``, fitted by
    least squares to ``(l - 1) / S`` on the rounds where ``i`` was played; when the fit
    leaves the box ``|theta_{i0}| <= 1/N``, ``|theta_{ij}| <= 2 (b - a) L / (S j)`` (the decay
    of Chebyshev coefficients of a Lipschitz function) it is refitted with the box as
    bounds. Here ``K = max l``, ``L = (max l - min l) / (b - a)``,
    ``N = 2 + 4 (b - a) L (1 + log m) / K`` and ``S = K N``. Exploration is inverse-gap
    weighting (SquareCB): arm ``i`` other than the greedy one gets probability
    ``1 / (K_arms + eta (yhat_i - yhat_min))`` and the greedy arm the rest, with
    ``eta = 2 t sqrt(K_arms t / (R - r + 2 alpha^2 t))``, ``R`` the squared prediction
    error so far, ``r`` the last constrained fit's residual and
    ``alpha = (pi + 2/pi log(2m + 1)) (b - a) L / (2 S (m + 1))`` the approximation
    error bound.

    Parameters
    ----------
    omegas : sequence of float, optional
        The arms.
    context_range : (float, float)
        ``(a, b)``: the interval mapped onto [-1, 1].
    num_features : int
        ``m``, the number of Chebyshev polynomials (6: ``T_0..T_5``).
    seed : int
        Seed of the sampling.
    """

    contextual = True

    def __init__(self, omegas=None, *, context_range, num_features: int = 6, seed: int = 0) -> None:
        super().__init__(omegas, seed=seed)
        self.context_range = _check_range("ChebCB", context_range)
        if isinstance(num_features, bool) or not isinstance(num_features, int) or num_features < 1:
            raise ValueError(f"ChebCB: `num_features` must be a positive integer, got {num_features!r}")
        m, k = num_features, self.num_arms
        self.m = m
        self.theta = np.zeros((k, m))
        # Sufficient statistics per arm: sum phi phi^T, sum phi (l - 1), count.
        self.gram = np.zeros((k, m, m))
        self.moment = np.zeros((k, m))
        self.counts = np.zeros(k, dtype=np.int64)
        self.eta = 0.0
        self.scale = 0.0
        self.max_cost, self.min_cost = -math.inf, math.inf
        self._history = np.zeros((0, 2))  # per round: (prediction of the played arm, cost)
        self._residual = 0.0
        self._feature = np.zeros(m)
        self._predicted = 0.0

    def features(self, context: float) -> np.ndarray:
        """``phi(c)``: Chebyshev features of the rescaled context."""
        low, high = self.context_range
        return chebyshev_features(2.0 * (context - low) / (high - low) - 1.0, self.m - 1)

    def distribution(self, context: float) -> np.ndarray:
        """Inverse-gap-weighted sampling distribution at ``context``."""
        yhat = self.theta @ self.features(context)
        best = int(np.argmin(yhat))
        p = 1.0 / (self.num_arms + self.eta * (yhat - yhat[best]))
        p[best] = 0.0
        p[best] = max(1.0 - p.sum(), 0.0)
        return p / p.sum()

    def _choose(self, context: float) -> int:
        self._feature = self.features(context)
        arm = int(self.rng.choice(self.num_arms, p=self.distribution(context)))
        self._predicted = float(self.theta[arm] @ self._feature)
        return arm

    def _fit(self, arm: int, bound: np.ndarray) -> float:
        """Refit ``theta[arm]``; return the constrained fit's residual (0 if unconstrained)."""
        gram, moment = self.gram[arm], self.moment[arm] / self.scale
        theta = np.linalg.pinv(gram, hermitian=True) @ moment
        if np.all(np.abs(theta) <= bound):
            self.theta[arm] = theta
            return 0.0
        # min ||X theta - y||^2 in the box, through a square root of the Gram matrix
        values, vectors = np.linalg.eigh(gram)
        keep = values > 1e-12 * max(values.max(), 1e-300)
        root = np.sqrt(values[keep])[:, None] * vectors[:, keep].T
        target = (vectors[:, keep].T @ moment) / np.sqrt(values[keep])
        fit = scipy.optimize.lsq_linear(root, target, bounds=(-bound, bound))
        self.theta[arm] = fit.x
        return float(2.0 * fit.cost)

    def _update(self, arm: int, cost: float) -> None:
        t = self.t + 1
        low, high = self.context_range
        width = high - low
        phi = self._feature
        self.gram[arm] += np.outer(phi, phi)
        self.moment[arm] += phi * (cost - 1.0)
        self.counts[arm] += 1
        self.max_cost, self.min_cost = max(self.max_cost, cost), min(self.min_cost, cost)
        big_k = self.max_cost
        lipschitz = (self.max_cost - self.min_cost) / width
        n_factor = 2.0 + 4.0 * width * lipschitz / max(big_k, 1e-12) * (1.0 + math.log(self.m))
        new_scale = big_k * n_factor
        refit_all = new_scale != self.scale
        self.scale = max(new_scale, 1e-12)
        bound = np.concatenate((
            [1.0 / n_factor], 2.0 * width * lipschitz / self.scale / np.arange(1, self.m)
        ))
        residual = 0.0
        for i in range(self.num_arms) if refit_all else (arm,):
            if self.counts[i] > 0:
                residual = self._fit(i, np.maximum(bound, 1e-15))
        self._residual = residual
        if self.t >= self._history.shape[0]:
            self._history = np.concatenate((self._history, np.zeros((max(64, self.t), 2))))
        self._history[self.t] = (self._predicted, cost)
        past = self._history[:t]
        # R: squared error of past predictions against the costs in the current units
        squared_error = float(np.sum((past[:, 0] - past[:, 1] / self.scale) ** 2))
        alpha = (math.pi + 2.0 / math.pi * math.log(2 * self.m + 1)) / (
            2.0 * self.scale * (self.m + 1)) * width * lipschitz
        denominator = max(squared_error - residual + 2.0 * alpha**2 * t, 1e-12)
        self.eta = 2.0 * t * math.sqrt(self.num_arms * t / denominator)
