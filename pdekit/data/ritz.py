"""Training vectors for the deep conjugate direction method: random combinations of Ritz vectors.

Kaneda et al., "A Deep Conjugate Direction Method for Iteratively Solving Linear Systems", ICML
2023, Sec. 3.4: Lanczos (full re-orthogonalisation) on the training matrix from ``A x_rand``
gives ``m`` Ritz pairs; each sample is ``b = sum_i c_i y_i / ||.||`` with ``c_i ~ 9 N(0, 1)``
for the ``m/2 + theta`` lowest Ritz vectors and ``N(0, 1)`` for the rest, so the data lean
towards the low frequencies that CG handles worst. No solutions are stored: the loss is
unsupervised (:func:`pdekit.models.dcdm.dcdm_loss`).
"""

from __future__ import annotations

from dataclasses import dataclass
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
    obstacle_fraction : float
        Fraction of solid cells in the training matrix (0: none).
    obstacle_radius : list of float
        ``[min, max]`` obstacle radius as a fraction of the domain.
    lanczos_steps : int
        Lanczos steps ``m``, hence Ritz vectors (at most the number of unknowns).
    theta : int
        The ``m/2 + theta`` lowest Ritz vectors get the boosted weights.
    boost : float
        Scale of the boosted weights (9 in the paper).
    matrix_seed : int
        Seed of the obstacles and of the Lanczos start vector (the matrix is the same for every sample).
    """

    shape: tuple = (32, 32, 32)
    bc: Any = (("dirichlet", "neumann"), "neumann", "neumann")
    obstacle_fraction: float = 0.0
    obstacle_radius: tuple = (0.05, 0.15)
    lanczos_steps: int = 1000
    theta: int = 50
    boost: float = 9.0
    matrix_seed: int = 0

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
        if not 0 <= self.obstacle_fraction <= 0.9:
            raise ValueError(f"`obstacle_fraction` must lie in [0, 0.9], got {self.obstacle_fraction}")


def training_operator(params: RitzVectorParameters):
    """The training matrix of ``params`` (float64 stencil) and its solid mask (or None)."""
    shape = tuple(params.shape)
    solid = None
    if params.obstacle_fraction > 0:
        anchor = poisson.dirichlet_anchor_axis(params.bc, len(shape))
        solid = poisson.random_obstacles(shape, np.random.default_rng(params.matrix_seed),
                                         fraction=params.obstacle_fraction,
                                         radius=tuple(params.obstacle_radius), anchor_axis=anchor)
    return poisson.operator(shape, bc=params.bc, solid=solid), solid


_CACHE: dict[RitzVectorParameters, tuple[torch.Tensor, int]] = {}


def ritz_basis(params: RitzVectorParameters) -> tuple[torch.Tensor, int]:
    """Ritz vectors ``(k, n)`` (ascending Ritz values, null space dropped) of the training
    matrix, and how many of the lowest get the boost. Computed once per process."""
    if params not in _CACHE:
        A, solid = training_operator(params)
        generator = torch.Generator().manual_seed(params.matrix_seed)
        x = torch.randn(A.vector_shape, dtype=torch.float64, generator=generator)
        if solid is not None:
            x[torch.as_tensor(solid)] = 0
        result = lanczos(A, params.lanczos_steps, A.matvec(x))
        values = result.ritz_values
        keep = values > 1e-8 * values.abs().max()
        vectors = result.ritz_vectors.reshape(result.steps, -1)[keep]
        boosted = min(len(vectors), params.lanczos_steps // 2 + params.theta)
        _CACHE.clear()  # one training matrix at a time
        _CACHE[params] = (vectors, boosted)
    return _CACHE[params]


class RitzVectorProblem(Problem):
    name = "ritz-vectors"
    Parameters = RitzVectorParameters
    description = "unit right-hand sides from Ritz vectors of a Poisson matrix (DCDM training data)"

    def layout(self, params: RitzVectorParameters) -> Layout:
        names = ("x", "y", "z")[: len(params.shape)]
        coords = poisson.grid_coordinates(params.shape, params.bc)
        fields = [FieldSpec("b", names, "input", "1", "unit-norm combination of Ritz vectors")]
        if params.obstacle_fraction > 0:
            fields.append(FieldSpec("solid", names, "mask", "1", "solid cells (1) and fluid (0)"))
        return Layout(fields=fields, coords=dict(zip(names, coords, strict=True)))

    def sample(self, params: RitzVectorParameters, solver, rng: np.random.Generator):
        vectors, boosted = ritz_basis(params)
        c = rng.standard_normal(len(vectors))
        c[:boosted] *= params.boost
        b = torch.as_tensor(c) @ vectors
        b = (b / torch.linalg.vector_norm(b)).reshape(tuple(params.shape)).numpy()
        fields = {"b": b}
        if params.obstacle_fraction > 0:
            _, solid = training_operator(params)
            fields["solid"] = solid.astype(np.int8)
        return fields, {}
