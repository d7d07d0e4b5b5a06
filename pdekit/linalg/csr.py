"""A general sparse operator on ``torch.sparse_csr_tensor``: the fallback for unstructured
matrices and the format SciPy users hand us.

Indices are stored as int32 wherever they fit (52 instead of 76 bytes per row of a 5-point
stencil, see the linear-algebra brief), which also makes CPU SpMV about 2x faster.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import scipy.sparse
import torch

from pdekit.linalg.operator import LinearOperator, numpy_dtype, torch_dtype

__all__ = ["CSROperator", "is_symmetric_sparse"]

_INT32_MAX = 2**31 - 1


def is_symmetric_sparse(matrix: scipy.sparse.spmatrix) -> bool:
    """Whether a SciPy sparse matrix equals its transpose up to rounding (O(nnz))."""
    matrix = scipy.sparse.csr_matrix(matrix)
    if matrix.shape[0] != matrix.shape[1]:
        return False
    if matrix.nnz == 0:
        return True
    scale = abs(matrix).max()
    diff = matrix - matrix.T
    if diff.nnz == 0:
        return True
    eps = np.finfo(matrix.dtype).eps if np.issubdtype(matrix.dtype, np.floating) else 0.0
    return bool(abs(diff).max() <= 100 * eps * scale)


def _csr_tensor(indptr, indices, data, shape, device, dtype) -> torch.Tensor:
    index_dtype = (
        torch.int32 if max(shape[0], len(indices)) <= _INT32_MAX else torch.int64
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        warnings.filterwarnings("ignore", message="Sparse invariant checks")
        return torch.sparse_csr_tensor(
            torch.as_tensor(indptr, dtype=index_dtype, device=device),
            torch.as_tensor(indices, dtype=index_dtype, device=device),
            torch.as_tensor(data, dtype=dtype, device=device),
            size=shape,
            check_invariants=False,
        )


class CSROperator(LinearOperator):
    """A square sparse matrix in CSR format as an operator (any device, any float dtype).

    Parameters
    ----------
    matrix : torch.Tensor
        A ``torch.sparse_csr`` tensor.
    vector_shape : tuple of int, optional
        Natural vector shape (e.g. a grid), default ``(n,)``.
    symmetric, positive_definite : bool, optional
        Tags. ``symmetric`` is checked (O(nnz), on the CPU) when not given.

    See Also
    --------
    CSROperator.from_scipy : the usual way to build one.
    """

    def __init__(
        self,
        matrix: torch.Tensor,
        *,
        vector_shape: Sequence[int] | None = None,
        symmetric: bool | None = None,
        positive_definite: bool | None = None,
    ) -> None:
        if matrix.layout != torch.sparse_csr:
            raise TypeError(f"CSROperator: `matrix` must be a sparse CSR tensor, got {matrix.layout}")
        if matrix.ndim != 2:
            raise ValueError(f"CSROperator: `matrix` must be 2-D, got {matrix.ndim}-D")
        super().__init__(
            tuple(matrix.shape), matrix.dtype, matrix.device, vector_shape=vector_shape,
            symmetric=symmetric, positive_definite=positive_definite,
        )
        self.matrix = matrix
        if self.symmetric is None:
            self.symmetric = is_symmetric_sparse(self.to_scipy())
        self._diagonal: torch.Tensor | None = None

    @classmethod
    def from_scipy(
        cls,
        matrix,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        vector_shape: Sequence[int] | None = None,
        symmetric: bool | None = None,
        positive_definite: bool | None = None,
    ) -> CSROperator:
        """Build from a SciPy sparse matrix (any format; converted to sorted CSR).

        ``dtype`` defaults to the matrix's, ``device`` to the CPU.
        """
        if not scipy.sparse.issparse(matrix):
            raise TypeError(
                f"CSROperator.from_scipy: `matrix` must be a SciPy sparse matrix, got {type(matrix)}"
            )
        csr = scipy.sparse.csr_matrix(matrix)
        if csr.shape[0] != csr.shape[1]:
            raise ValueError(
                f"CSROperator.from_scipy: the matrix must be square, got shape {csr.shape}"
            )
        csr.sum_duplicates()
        csr.sort_indices()
        if symmetric is None:
            symmetric = is_symmetric_sparse(csr)
        if dtype is None:
            dtype = torch_dtype(csr.dtype) if np.issubdtype(csr.dtype, np.inexact) else torch.float64
        tensor = _csr_tensor(csr.indptr, csr.indices, csr.data, csr.shape, device or "cpu", dtype)
        return cls(
            tensor, vector_shape=vector_shape, symmetric=symmetric,
            positive_definite=positive_definite,
        )

    @classmethod
    def from_torch(
        cls,
        tensor: torch.Tensor,
        *,
        vector_shape: Sequence[int] | None = None,
        symmetric: bool | None = None,
        positive_definite: bool | None = None,
    ) -> CSROperator:
        """Build from a torch sparse tensor (CSR, or COO which is converted once)."""
        if tensor.layout == torch.sparse_coo:
            tensor = tensor.coalesce()
            indices = tensor.indices().cpu().numpy()
            values = tensor.values().cpu().numpy()
            matrix = scipy.sparse.coo_matrix((values, (indices[0], indices[1])), shape=tensor.shape)
            return cls.from_scipy(
                matrix, dtype=tensor.dtype, device=tensor.device, vector_shape=vector_shape,
                symmetric=symmetric, positive_definite=positive_definite,
            )
        if tensor.layout == torch.sparse_csr:
            crow, col = tensor.crow_indices(), tensor.col_indices()
            rebuilt = _csr_tensor(
                crow, col, tensor.values(), tuple(tensor.shape), tensor.device, tensor.dtype
            )
            return cls(
                rebuilt, vector_shape=vector_shape, symmetric=symmetric,
                positive_definite=positive_definite,
            )
        raise TypeError(f"CSROperator.from_torch: unsupported layout {tensor.layout}")

    @property
    def nnz(self) -> int:
        """Number of stored entries."""
        return int(self.matrix.values().numel())

    def _matvec(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(x.shape[0], -1)
        if x.shape[0] == 1 or self.device.type == "cpu":
            # MKL's CSR @ vector is fast; CSR @ matrix on the CPU is slower than a loop.
            out = torch.stack([self.matrix @ v for v in flat])
        else:
            out = (self.matrix @ flat.T).T
        return out.reshape(x.shape)

    def _matvec_into(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        flat, out_flat = x.reshape(x.shape[0], -1), out.view(x.shape[0], -1)
        if x.shape[0] == 1 or self.device.type == "cpu":
            for v, o in zip(flat, out_flat, strict=True):
                torch.mv(self.matrix, v, out=o)
        else:
            out_flat.copy_((self.matrix @ flat.T).T)
        return out

    def _to(self, device, dtype) -> CSROperator:
        m = self.matrix
        return CSROperator(
            _csr_tensor(m.crow_indices(), m.col_indices(), m.values().to(dtype), tuple(m.shape),
                        device, dtype),
            vector_shape=self.vector_shape, symmetric=self.symmetric,
            positive_definite=self.positive_definite,
        )

    def diagonal(self) -> torch.Tensor:
        if self._diagonal is None:
            crow = self.matrix.crow_indices().long()
            col = self.matrix.col_indices().long()
            rows = torch.repeat_interleave(
                torch.arange(self.n, device=self.device), crow[1:] - crow[:-1]
            )
            on_diag = rows == col
            diag = torch.zeros(self.n, dtype=self.dtype, device=self.device)
            diag.index_add_(0, rows[on_diag], self.matrix.values()[on_diag])
            self._diagonal = diag.reshape(self.vector_shape)
        return self._diagonal

    def to_scipy(self) -> scipy.sparse.csr_matrix:
        m = self.matrix
        return scipy.sparse.csr_matrix(
            (
                m.values().detach().cpu().numpy().astype(numpy_dtype(self.dtype), copy=False),
                m.col_indices().cpu().numpy(),
                m.crow_indices().cpu().numpy(),
            ),
            shape=self.shape,
        )
