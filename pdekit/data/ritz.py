"""Training vectors for the deep conjugate direction method: random combinations of Ritz vectors.

Kaneda et al., "A Deep Conjugate Direction Method for Iteratively Solving Linear Systems", ICML
2023, Sec. 3.4: Lanczos (full re-orthogonalisation) on the training matrix from ``A x_rand``
gives ``m`` Ritz pairs; each sample is ``b = sum_i c_i y_i / ||.||`` with ``c_i ~ 9 N(0, 1)``
for the ``m/2 + theta`` lowest Ritz vectors and ``N(0, 1)`` for the rest, so the data lean
towards the low frequencies that CG handles worst. No solutions are stored: the loss is
unsupervised (:func:`pdekit.models.dcdm.dcdm_loss`).

The paper trains on one matrix (the obstacle-free box). ``layouts > 1`` trains on several
instead: each sample draws one of ``layouts`` random obstacle layouts (solid fraction drawn per
layout from ``obstacle_fraction = [min, max]``) and is built from that matrix's own Ritz
vectors, with the solid mask stored beside ``b``; the test and valid splits use layouts of their
own, never seen in training. This is the direction of the authors' successor work (Lan et al.,
"Neural preconditioned Poisson solver for mixed boundary conditions", ICML 2024), which trains
on changing domains.
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from pdekit.classical import poisson
from pdekit.data.problems import FieldSpec, Layout, Problem
from pdekit.linalg import lanczos
from pdekit.linalg.stencil import _normalize_bc

__all__ = ["RitzVectorParameters", "RitzVectorProblem", "ritz_basis"]


@dataclass(frozen=True)
class RitzVectorParameters:
    """The training matrix (a pressure-Poisson stencil, optionally with fixed random obstacles)
    and the Ritz-vector sampling (see the module docstring).

    Attributes
    ----------
    shape : list of int
        Grid of the training matrix (2 or 3 axes).
    bc : str or list
        Boundary conditions, as in the ``poisson`` problem.
    obstacle_fraction : float or [float, float]
        Fraction of solid cells in the training matrix (0: none); with ``layouts > 1`` a range
        ``[min, max]`` draws each layout's fraction uniformly from it.
    obstacle_radius : list of float
        ``[min, max]`` obstacle radius as a fraction of the domain.
    lanczos_steps : int
        Lanczos steps ``m``, hence Ritz vectors (at most the number of unknowns).
    theta : int
        The ``m/2 + theta`` lowest Ritz vectors get the boosted weights.
    boost : float
        Scale of the boosted weights (9 in the paper).
    matrix_seed : int
        Seed of the obstacles and of the Lanczos start vector (with ``layouts = 1`` the matrix is
        the same for every sample).
    layouts : int
        Number of obstacle layouts (training matrices) the samples draw from (1: the paper's
        single matrix). Each layout's Ritz vectors are computed once and kept in memory
        (``lanczos_steps x cells`` doubles each).
    """

    shape: tuple = (32, 32, 32)
    bc: Any = (("dirichlet", "neumann"), "neumann", "neumann")
    obstacle_fraction: Any = 0.0
    obstacle_radius: tuple = (0.05, 0.15)
    lanczos_steps: int = 1000
    theta: int = 50
    boost: float = 9.0
    matrix_seed: int = 0
    layouts: int = 1

    def __post_init__(self):
        if len(self.shape) not in (2, 3) or any(not isinstance(n, int) or n < 2 for n in self.shape):
            raise ValueError(f"`shape` must be 2 or 3 integers >= 2, got {self.shape}")
        if isinstance(self.bc, list):
            object.__setattr__(self, "bc", tuple(tuple(b) if isinstance(b, list) else b for b in self.bc))
        _normalize_bc(self.bc, len(self.shape))
        n = int(np.prod(self.shape))
        if not 2 <= self.lanczos_steps <= n:
            raise ValueError(f"`lanczos_steps` must lie in [2, {n}], got {self.lanczos_steps}")
        if self.theta < 0 or self.boost <= 0:
            raise ValueError("`theta` must be >= 0 and `boost` > 0")
        if not isinstance(self.layouts, int) or self.layouts < 1:
            raise ValueError(f"`layouts` must be an integer >= 1, got {self.layouts}")
        fraction = self.obstacle_fraction
        if isinstance(fraction, (list, tuple)):
            fraction = tuple(float(f) for f in fraction)
            if len(fraction) != 2 or fraction[0] > fraction[1]:
                raise ValueError(f"`obstacle_fraction` must be a number or [min, max], got {list(fraction)}")
            if self.layouts == 1 and fraction[0] != fraction[1]:
                raise ValueError("`obstacle_fraction` as a range needs `layouts` > 1")
            object.__setattr__(self, "obstacle_fraction", fraction)
        bounds = fraction if isinstance(fraction, tuple) else (fraction, fraction)
        if not all(0 <= f <= 0.9 for f in bounds):
            raise ValueError(f"`obstacle_fraction` must lie in [0, 0.9], got {self.obstacle_fraction}")

    @property
    def has_obstacles(self) -> bool:
        """Whether any training matrix has solid cells."""
        fraction = self.obstacle_fraction
        return (max(fraction) if isinstance(fraction, tuple) else fraction) > 0


def _layout_seed(params: RitzVectorParameters, layout: int) -> int:
    """The seed of one layout's obstacles and Lanczos start (``matrix_seed`` itself for the
    single-matrix case, so those datasets are unchanged)."""
    if params.layouts == 1:
        return params.matrix_seed
    return int(np.random.SeedSequence(params.matrix_seed, spawn_key=(layout,)).generate_state(1)[0])


def training_operator(params: RitzVectorParameters, layout: int = 0):
    """Training matrix number ``layout`` of ``params`` (float64 stencil) and its solid mask (or
    None)."""
    if not 0 <= layout < params.layouts:
        raise ValueError(f"`layout` must lie in [0, {params.layouts}), got {layout}")
    shape = tuple(params.shape)
    solid = None
    rng = np.random.default_rng(_layout_seed(params, layout))
    fraction = params.obstacle_fraction
    if isinstance(fraction, tuple):
        fraction = float(rng.uniform(*fraction))
    if fraction > 0:
        anchor = poisson.dirichlet_anchor_axis(params.bc, len(shape))
        solid = poisson.random_obstacles(shape, rng, fraction=fraction,
                                         radius=tuple(params.obstacle_radius), anchor_axis=anchor)
    return poisson.operator(shape, bc=params.bc, solid=solid), solid


_CACHE: OrderedDict[tuple[RitzVectorParameters, int], tuple[torch.Tensor, int]] = OrderedDict()


def ritz_basis(params: RitzVectorParameters, layout: int = 0) -> tuple[torch.Tensor, int]:
    """Ritz vectors ``(k, n)`` (ascending Ritz values, null space dropped) of training matrix
    ``layout``, and how many of the lowest get the boost. Computed once per process (the last
    ``params.layouts`` bases are kept)."""
    key = (params, layout)
    if key in _CACHE:
        _CACHE.move_to_end(key)
    else:
        A, solid = training_operator(params, layout)
        generator = torch.Generator().manual_seed(_layout_seed(params, layout))
        x = torch.randn(A.vector_shape, dtype=torch.float64, generator=generator)
        if solid is not None:
            x[torch.as_tensor(solid)] = 0
        result = lanczos(A, params.lanczos_steps, A.matvec(x))
        values = result.ritz_values
        keep = values > 1e-8 * values.abs().max()
        vectors = result.ritz_vectors.reshape(result.steps, -1)[keep]
        boosted = min(len(vectors), params.lanczos_steps // 2 + params.theta)
        if any(cached != params for cached, _ in _CACHE):
            _CACHE.clear()  # one recipe's matrices at a time
        while len(_CACHE) >= params.layouts:
            _CACHE.popitem(last=False)
        _CACHE[key] = (vectors, boosted)
    return _CACHE[key]


class RitzVectorProblem(Problem):
    name = "ritz-vectors"
    Parameters = RitzVectorParameters
    description = "unit right-hand sides from Ritz vectors of a Poisson matrix (DCDM training data)"

    def layout(self, params: RitzVectorParameters) -> Layout:
        names = ("x", "y", "z")[: len(params.shape)]
        coords = poisson.grid_coordinates(params.shape, params.bc)
        fields = [FieldSpec("b", names, "input", "1", "unit-norm combination of Ritz vectors")]
        if params.has_obstacles:
            fields.append(FieldSpec("solid", names, "mask", "1", "solid cells (1) and fluid (0)"))
        return Layout(fields=fields, coords=dict(zip(names, coords, strict=True)))

    def for_split(self, params: RitzVectorParameters, split: str) -> RitzVectorParameters:
        """With several layouts, each split other than ``train`` gets layouts of its own."""
        if params.layouts == 1 or split == "train":
            return params
        return replace(params, matrix_seed=params.matrix_seed + zlib.crc32(split.encode()))

    def sample(self, params: RitzVectorParameters, solver, rng: np.random.Generator):
        layout = int(rng.integers(params.layouts)) if params.layouts > 1 else 0
        vectors, boosted = ritz_basis(params, layout)
        c = rng.standard_normal(len(vectors))
        c[:boosted] *= params.boost
        b = torch.as_tensor(c) @ vectors
        b = (b / torch.linalg.vector_norm(b)).reshape(tuple(params.shape)).numpy()
        fields = {"b": b}
        if params.has_obstacles:
            _, solid = training_operator(params, layout)
            fields["solid"] = (np.zeros(b.shape, np.int8) if solid is None else solid.astype(np.int8))
        return fields, {}
