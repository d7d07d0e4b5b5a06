"""Sparse triangular solves: the one kernel behind SSOR, IC(0) and lexicographic SOR.

On the CPU, PyTorch's CSR triangular solve (MKL) is about 8x faster than
``scipy.sparse.linalg.spsolve_triangular``; on CUDA it calls cuSPARSE. Where the device has
no sparse triangular solve, the solve falls back to the CPU (correct, but with transfers).
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse
import torch

from pdekit.linalg.csr import _csr_tensor
from pdekit.linalg.operator import numpy_dtype

__all__ = ["SparseTriangular"]


class SparseTriangular:
    """A sparse triangular matrix with a nonzero diagonal, ready to solve with.

    Parameters
    ----------
    matrix : scipy.sparse matrix
        Lower or upper triangular (including the diagonal).
    lower : bool
        Which triangle.
    dtype, device
        Where the solves run.
    """

    def __init__(
        self, matrix, *, lower: bool, dtype: torch.dtype, device: torch.device
    ) -> None:
        csr = scipy.sparse.csr_matrix(matrix, dtype=numpy_dtype(dtype))
        csr.sum_duplicates()
        csr.sort_indices()
        if np.any(csr.diagonal() == 0):
            raise ValueError("SparseTriangular: the triangular factor has a zero on its diagonal")
        self.lower = lower
        self.shape = csr.shape
        self.dtype = dtype
        self.device = device
        self._scipy = csr
        self._tensor = _csr_tensor(csr.indptr, csr.indices, csr.data, csr.shape, device, dtype)
        self._cpu_tensor: torch.Tensor | None = None

    def solve(self, rhs: torch.Tensor) -> torch.Tensor:
        """Solve ``T y = rhs`` for ``rhs`` of shape ``(batch, n)``; returns ``(batch, n)``."""
        columns = rhs.T.contiguous() if rhs.shape[0] > 1 else rhs.reshape(-1, 1)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                y = torch.triangular_solve(columns, self._tensor, upper=not self.lower).solution
        except (RuntimeError, NotImplementedError):
            if rhs.is_cuda and torch.cuda.is_current_stream_capturing():
                raise
            if self._cpu_tensor is None:
                self._cpu_tensor = self._tensor.cpu()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                y = torch.triangular_solve(
                    columns.cpu(), self._cpu_tensor, upper=not self.lower
                ).solution.to(rhs.device)
        return y.T if rhs.shape[0] > 1 else y.reshape(1, -1)

    def matvec(self, x: torch.Tensor) -> torch.Tensor:
        """``T x`` for ``x`` of shape ``(batch, n)``."""
        return torch.stack([self._tensor @ v for v in x])

    def to_scipy(self) -> scipy.sparse.csr_matrix:
        """The factor as a SciPy CSR matrix."""
        return self._scipy.copy()
