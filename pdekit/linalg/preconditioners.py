"""Classical preconditioners: Jacobi, SSOR(omega) and incomplete Cholesky IC(0).

Each returns a :class:`~pdekit.linalg.LinearOperator` that applies ``M^{-1}`` (an
approximation of ``A^{-1}``), so it can be passed as ``M=`` to :func:`~pdekit.linalg.cg`
(and, through ``.as_scipy()``, to SciPy's solvers).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse
import torch

from pdekit.linalg.operator import DiagonalOperator, LinearOperator, aslinearoperator
from pdekit.linalg.stencil import StencilOperator
from pdekit.linalg.triangular import SparseTriangular

__all__ = [
    "ICholPreconditioner",
    "SSORPreconditioner",
    "ichol0",
    "ichol0_factor_csr",
    "ichol0_factor_stencil",
    "jacobi",
    "ssor",
]


def _positive_diagonal(fn: str, A: LinearOperator) -> torch.Tensor:
    diag = A.diagonal()
    bad = int((~(diag > 0)).sum())
    if bad:
        raise ValueError(
            f"{fn}: the diagonal of `A` has {bad} non-positive entries; the preconditioner "
            "needs a symmetric positive definite matrix with a positive diagonal"
        )
    return diag


def jacobi(A) -> DiagonalOperator:
    """Jacobi (diagonal) preconditioner ``M^{-1} = D^{-1}``.

    Parameters
    ----------
    A : LinearOperator or matrix-like
        Operator exposing its diagonal (stencil, CSR, dense).
    """
    A = aslinearoperator(A)
    return DiagonalOperator(1.0 / _positive_diagonal("jacobi", A), positive_definite=True)


def _check_omega(fn: str, omega: float) -> float:
    omega = float(omega)
    if not (0.0 < omega < 2.0):
        raise ValueError(f"{fn}: `omega` must lie in (0, 2), got {omega}")
    return omega


class SSORPreconditioner(LinearOperator):
    """``M^{-1} = omega (2 - omega) (D + omega U)^{-1} D (D + omega L)^{-1}``.

    Saad, *Iterative Methods for Sparse Linear Systems*, 2nd ed., eq. (10.5)-(10.6), with
    ``A = D + L + U`` (diagonal, strictly lower, strictly upper parts) in natural order.
    Built by :func:`ssor`.
    """

    def __init__(self, A: LinearOperator, omega: float) -> None:
        super().__init__(
            A.shape, A.dtype, A.device, vector_shape=A.vector_shape, symmetric=True,
            positive_definite=True,
        )
        self.omega = omega
        self._source = A
        matrix = A.to_scipy().tocsr()
        diag = matrix.diagonal()
        d = scipy.sparse.diags(diag / omega)
        self._lower = SparseTriangular(
            d + scipy.sparse.tril(matrix, k=-1), lower=True, dtype=A.dtype, device=A.device
        )
        self._upper = SparseTriangular(
            d + scipy.sparse.triu(matrix, k=1), lower=False, dtype=A.dtype, device=A.device
        )
        # With D/omega on the triangles: M^{-1} = (2 - omega)/omega (D/w + U)^{-1} D (D/w + L)^{-1}
        scale = (2.0 - omega) / omega
        self._middle = torch.as_tensor(diag * scale, dtype=A.dtype, device=A.device)

    def _matvec(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(x.shape[0], -1)
        y = self._lower.solve(flat) * self._middle
        return self._upper.solve(y).reshape(x.shape)

    def _to(self, device, dtype) -> SSORPreconditioner:
        return SSORPreconditioner(self._source.to(device, dtype), self.omega)


def ssor(A, omega: float = 1.0) -> SSORPreconditioner:
    """Symmetric successive over-relaxation preconditioner (natural ordering).

    Parameters
    ----------
    A : LinearOperator or matrix-like
        Symmetric positive definite operator with explicit entries (stencil, CSR, dense).
    omega : float
        Relaxation factor in (0, 2); ``omega = 1`` is symmetric Gauss-Seidel.
    """
    A = aslinearoperator(A)
    omega = _check_omega("ssor", omega)
    _positive_diagonal("ssor", A)
    return SSORPreconditioner(A, omega)


def ichol0_factor_csr(matrix, shift: float = 0.0) -> scipy.sparse.csr_matrix:
    """Zero fill-in incomplete Cholesky factor ``L`` (``A ~ L L^T``) of a sparse SPD matrix.

    Row-oriented ("up-looking") IC(0), Golub & Van Loan, *Matrix Computations*, 4th ed.,
    Sec. 11.5.8: for each row ``i`` and each ``k < i`` in the pattern of ``tril(A)``,
    ``l_ik = (a_ik - sum_{m<k} l_im l_km) / l_kk`` and
    ``l_ii = sqrt(a_ii - sum_{m<i} l_im^2)``, keeping only entries in ``A``'s pattern.
    A plain Python loop over rows: fine up to about 10^5 unknowns; stencil operators use
    the vectorised :func:`ichol0_factor_stencil`.

    Parameters
    ----------
    matrix : scipy.sparse matrix
        Symmetric positive definite.
    shift : float
        Factor ``A + shift * diag(A)`` instead (Manteuffel's shift), for matrices whose IC(0)
        breaks down.
    """
    lower = scipy.sparse.tril(scipy.sparse.csr_matrix(matrix, dtype=np.float64)).tocsr()
    lower.sum_duplicates()
    lower.sort_indices()
    n = lower.shape[0]
    indptr, indices = lower.indptr, lower.indices
    data = lower.data.copy()
    rows: list[dict[int, float]] = []
    for i in range(n):
        start, end = indptr[i], indptr[i + 1]
        if end == start or indices[end - 1] != i:
            raise ValueError(f"ichol0: row {i} of `A` has no diagonal entry")
        row: dict[int, float] = {}
        for pos in range(start, end - 1):
            k = int(indices[pos])
            row_k = rows[k]
            s = 0.0
            for m, l_im in row.items():
                l_km = row_k.get(m)
                if l_km is not None:
                    s += l_im * l_km
            row[k] = (data[pos] - s) / row_k[k]
        pivot = data[end - 1] * (1.0 + shift) - sum(v * v for v in row.values())
        if not pivot > 0:
            raise ValueError(
                f"ichol0: breakdown at row {i} (pivot {pivot:.3e} <= 0): IC(0) does not exist "
                "for this matrix; pass `shift=` (e.g. 1e-3) to factor A + shift*diag(A)"
            )
        row[i] = math.sqrt(pivot)
        rows.append(row)
        data[start:end] = [row[int(k)] for k in indices[start:end]]
    return scipy.sparse.csr_matrix((data, indices.copy(), indptr.copy()), shape=lower.shape)


def _hyperplanes(grid_shape: tuple[int, ...]) -> list[np.ndarray]:
    """Flat indices of the cells on each hyperplane ``i_0 + ... + i_{d-1} = s``, in order.

    Along the lexicographic order every neighbour ``i - e_d`` lies on the previous
    hyperplane, so a recurrence over ``tril(A)`` can be vectorised one hyperplane at a time.
    """
    level = np.zeros(grid_shape, dtype=np.int64)
    for d, n in enumerate(grid_shape):
        shape = [1] * len(grid_shape)
        shape[d] = n
        level = level + np.arange(n).reshape(shape)
    flat = level.ravel()
    order = np.argsort(flat, kind="stable")
    counts = np.bincount(flat)
    return np.split(order, np.cumsum(counts)[:-1])


def ichol0_factor_stencil(A: StencilOperator, shift: float = 0.0) -> scipy.sparse.csr_matrix:
    """IC(0) of a 3/5/7-point stencil, vectorised over hyperplanes.

    The stencil's graph has no triangles (it is bipartite), so IC(0) keeps the
    off-diagonal pattern untouched: ``A ~ (P + L_A) P^{-1} (P + L_A)^T`` with the pivots
    ``p_i = a_ii - sum_d a_{i,i-e_d}^2 / p_{i-e_d}`` (Meijerink & van der Vorst, 1977), and
    ``L = (P + L_A) P^{-1/2}``. Identical to :func:`ichol0_factor_csr` on ``A.to_scipy()``.
    """
    diag, couplings = A.explicit_coefficients()
    diag = diag.detach().cpu().double().numpy().ravel() * (1.0 + shift)
    strides = [math.prod(A.grid_shape[d + 1:]) for d in range(A.ndim)]
    # w_before[d][i] = coupling between i - e_d and i (zero on the low boundary).
    w_before = []
    for d, w in enumerate(couplings):
        full = np.zeros(A.grid_shape)
        index = tuple(slice(1, None) if e == d else slice(None) for e in range(A.ndim))
        full[index] = w.detach().cpu().double().numpy()
        w_before.append(full.ravel())
    pivots = np.ones_like(diag)
    for cells in _hyperplanes(A.grid_shape):
        value = diag[cells].copy()
        for d in range(A.ndim):
            w = w_before[d][cells]
            neighbour = np.where(w != 0, cells - strides[d], cells)
            value -= w * w / pivots[neighbour]
        if not np.all(value > 0):
            raise ValueError(
                "ichol0: breakdown (a pivot <= 0): IC(0) does not exist for this operator; "
                "pass `shift=` (e.g. 1e-3)"
            )
        pivots[cells] = value
    matrix = scipy.sparse.tril(A.to_scipy().astype(np.float64), k=-1).tocsr()
    sqrt_p = np.sqrt(pivots)
    # Column scaling by p^{-1/2} of the strictly lower part, then the diagonal sqrt(p).
    lower = matrix @ scipy.sparse.diags(1.0 / sqrt_p) + scipy.sparse.diags(sqrt_p)
    lower = lower.tocsr()
    lower.sort_indices()
    return lower


class ICholPreconditioner(LinearOperator):
    """``M^{-1} = L^{-T} L^{-1}`` for an incomplete Cholesky factor ``L``. Built by
    :func:`ichol0`."""

    def __init__(self, A: LinearOperator, factor: scipy.sparse.csr_matrix, shift: float) -> None:
        super().__init__(
            A.shape, A.dtype, A.device, vector_shape=A.vector_shape, symmetric=True,
            positive_definite=True,
        )
        self.shift = shift
        self.factor = factor
        self._lower = SparseTriangular(factor, lower=True, dtype=A.dtype, device=A.device)
        self._upper = SparseTriangular(factor.T, lower=False, dtype=A.dtype, device=A.device)
        self._source = A

    def _matvec(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(x.shape[0], -1)
        return self._upper.solve(self._lower.solve(flat)).reshape(x.shape)

    def _to(self, device, dtype) -> ICholPreconditioner:
        return ICholPreconditioner(self._source.to(device, dtype), self.factor, self.shift)


def ichol0(A, *, shift: float = 0.0) -> ICholPreconditioner:
    """Incomplete Cholesky preconditioner with zero fill-in, IC(0).

    Parameters
    ----------
    A : LinearOperator or matrix-like
        Symmetric positive definite with explicit entries. Stencil operators are factored by
        a vectorised hyperplane recurrence; other matrices by a row loop.
    shift : float
        Factor ``A + shift * diag(A)`` (use when IC(0) breaks down).
    """
    A = aslinearoperator(A)
    if A.symmetric is False:
        raise ValueError("ichol0: `A` is tagged symmetric=False; IC(0) needs an SPD matrix")
    shift = float(shift)
    if shift < 0:
        raise ValueError(f"ichol0: `shift` must be >= 0, got {shift}")
    _positive_diagonal("ichol0", A)
    if isinstance(A, StencilOperator):
        factor = ichol0_factor_stencil(A, shift)
    else:
        factor = ichol0_factor_csr(A.to_scipy(), shift)
    return ICholPreconditioner(A, factor, shift)
