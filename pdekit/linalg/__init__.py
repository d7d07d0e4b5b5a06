"""Layer 0: the shared sparse-linear-algebra kernels. Pure torch, any device, any float dtype.

Operators (:class:`LinearOperator`, :class:`StencilOperator`, :class:`CSROperator`, ...),
solvers (:func:`cg`, :func:`sor`), preconditioners (:func:`jacobi`, :func:`ssor`,
:func:`ichol0`, :func:`multigrid`), and :func:`lanczos`. Every solver returns a :class:`SolveResult`.
"""

from pdekit.linalg.cg import cg
from pdekit.linalg.csr import CSROperator
from pdekit.linalg.dcdm import dcdm
from pdekit.linalg.lanczos import LanczosResult, lanczos
from pdekit.linalg.multigrid import MultigridPreconditioner, multigrid
from pdekit.linalg.operator import (
    CallableOperator,
    DenseOperator,
    DiagonalOperator,
    LinearOperator,
    aslinearoperator,
)
from pdekit.linalg.preconditioners import ichol0, jacobi, ssor
from pdekit.linalg.result import SolveResult, SolveStatus
from pdekit.linalg.sor import sor
from pdekit.linalg.stencil import StencilOperator

__all__ = [
    "CSROperator",
    "CallableOperator",
    "DenseOperator",
    "DiagonalOperator",
    "LanczosResult",
    "LinearOperator",
    "MultigridPreconditioner",
    "SolveResult",
    "SolveStatus",
    "StencilOperator",
    "aslinearoperator",
    "cg",
    "dcdm",
    "ichol0",
    "jacobi",
    "lanczos",
    "multigrid",
    "sor",
    "ssor",
]
