"""Optimal transport: entropic OT by log-domain Sinkhorn and by Sinkhorn-Newton-Sparse, and
sparsity-constrained OT; cost matrices for point clouds, grids and images.

All solvers take marginals ``a`` (``(n,)`` or ``(B, n)``), ``b`` and a cost ``C``
(``(n, m)`` or ``(B, n, m)``) as torch tensors (any device, any float dtype) or arrays, and
return an :class:`OTResult`.
"""

from pdekit.classical.ot.costs import (
    euclidean_cost,
    grid_cost,
    grid_points,
    image_distribution,
    l1_cost,
    squared_euclidean_cost,
)
from pdekit.classical.ot.newton import sinkhorn_newton_sparse
from pdekit.classical.ot.result import OTResult, OTStatus
from pdekit.classical.ot.sinkhorn import sinkhorn
from pdekit.classical.ot.sparse_constrained import sparsity_constrained_ot

__all__ = [
    "OTResult",
    "OTStatus",
    "euclidean_cost",
    "grid_cost",
    "grid_points",
    "image_distribution",
    "l1_cost",
    "sinkhorn",
    "sinkhorn_newton_sparse",
    "sparsity_constrained_ot",
    "squared_euclidean_cost",
]
