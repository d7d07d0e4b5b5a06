"""The `LinearOperator` protocol and the wrappers that make anything one.

Every solver in pdekit takes a `LinearOperator`: a stencil, a CSR matrix, a dense tensor, a
callable or a learned network. An operator knows its ``shape`` ``(n, n)``, ``dtype``, ``device``
and the ``vector_shape`` of the vectors it acts on (a grid shape for stencils, ``(n,)``
otherwise), and carries tags that solvers read: ``symmetric`` and ``positive_definite``
(``True``, ``False`` or ``None`` for unknown; promises that solvers check when cheap).

Vectors may carry leading batch dimensions: ``A @ x`` accepts ``x`` of shape
``(*batch, *vector_shape)`` or ``(*batch, n)`` and returns the same layout.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

import numpy as np
import scipy.sparse
import scipy.sparse.linalg
import torch

from pdekit.linalg._checks import as_tensor_like

__all__ = [
    "CallableOperator",
    "DenseOperator",
    "DiagonalOperator",
    "LinearOperator",
    "apply_into",
    "aslinearoperator",
    "normalize_device",
    "numpy_dtype",
]

_NUMPY_DTYPES = {
    torch.float16: np.float16,
    torch.float32: np.float32,
    torch.float64: np.float64,
    torch.complex64: np.complex64,
    torch.complex128: np.complex128,
}


def numpy_dtype(dtype: torch.dtype) -> np.dtype:
    """The NumPy dtype matching a torch floating dtype (bfloat16 maps to float32)."""
    return np.dtype(_NUMPY_DTYPES.get(dtype, np.float32))


def normalize_device(device: torch.device | str) -> torch.device:
    """``torch.device(device)`` with the index filled in for CUDA (``cuda`` -> ``cuda:0``)."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def torch_dtype(dtype) -> torch.dtype:
    """The torch dtype matching a NumPy dtype."""
    return torch.from_numpy(np.zeros(0, dtype=dtype)).dtype


class LinearOperator(ABC):
    """A square linear operator acting on (batches of) vectors, on any device and dtype.

    Subclasses implement :meth:`_matvec` on a tensor of shape ``(batch, *vector_shape)``
    and :meth:`_to`; the public :meth:`matvec` does the checking and reshaping.

    Parameters
    ----------
    shape : tuple of int
        ``(n, n)``.
    dtype, device
        Of the operator's data; inputs must match.
    vector_shape : tuple of int, optional
        Natural shape of a vector (``(n,)`` by default, the grid shape for stencils).
    symmetric, positive_definite : bool or None
        Tags; ``None`` means unknown.
    """

    def __init__(
        self,
        shape: tuple[int, int],
        dtype: torch.dtype,
        device: torch.device | str,
        *,
        vector_shape: Sequence[int] | None = None,
        symmetric: bool | None = None,
        positive_definite: bool | None = None,
    ) -> None:
        shape = tuple(int(s) for s in shape)
        if len(shape) != 2:
            raise ValueError(f"{type(self).__name__}: `shape` must be (n, n), got {shape}")
        if shape[0] != shape[1]:
            raise ValueError(
                f"{type(self).__name__}: operators must be square, got shape {shape}"
            )
        self.shape: tuple[int, int] = shape
        self.dtype: torch.dtype = dtype
        self.device: torch.device = normalize_device(device)
        vector_shape = (shape[1],) if vector_shape is None else tuple(int(s) for s in vector_shape)
        if math.prod(vector_shape) != shape[1]:
            raise ValueError(
                f"{type(self).__name__}: `vector_shape` {vector_shape} does not have "
                f"{shape[1]} entries"
            )
        self.vector_shape: tuple[int, ...] = vector_shape
        self.symmetric = symmetric
        self.positive_definite = positive_definite
        # Whether ``_matvec`` may run inside a CUDA-graph capture (no host syncs, no
        # library calls that misbehave under capture). Solvers capture only such operators.
        self.capturable = False

    # -- the part subclasses write -------------------------------------------------------
    @abstractmethod
    def _matvec(self, x: torch.Tensor) -> torch.Tensor:
        """Apply to ``x`` of shape ``(batch, *vector_shape)``; return the same shape."""

    @abstractmethod
    def _to(self, device: torch.device, dtype: torch.dtype) -> LinearOperator:
        """A copy of this operator on ``device`` in ``dtype``."""

    def _matvec_into(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """Write ``A x`` into the preallocated ``out`` (both ``(batch, *vector_shape)``).

        Solvers call this in their loops: on the CPU a fresh multi-megabyte buffer per
        product costs more in page faults than the product itself. Override it when the
        product can be written in place.
        """
        out.copy_(self._matvec(x))
        return out

    # -- the public interface ------------------------------------------------------------
    @property
    def n(self) -> int:
        """Number of unknowns."""
        return self.shape[1]

    def matvec(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``A x`` for ``x`` of shape ``(*batch, *vector_shape)`` or ``(*batch, n)``."""
        x = as_tensor_like(f"{type(self).__name__}.matvec", "x", x, self.dtype, self.device)
        xb, batch_shape, flat = self.split_batch(x, "x", f"{type(self).__name__}.matvec")
        return self.merge_batch(self._matvec(xb), batch_shape, flat)

    def __matmul__(self, x):
        if isinstance(x, torch.Tensor):
            return self.matvec(x)
        return NotImplemented

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.matvec(x)

    def to(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> LinearOperator:
        """This operator on another device and/or dtype (``self`` when nothing changes)."""
        if isinstance(device, torch.dtype):  # allow A.to(torch.float32)
            device, dtype = None, device
        device = self.device if device is None else normalize_device(device)
        dtype = self.dtype if dtype is None else dtype
        if device == self.device and dtype == self.dtype:
            return self
        return self._to(device, dtype)

    def diagonal(self) -> torch.Tensor:
        """The main diagonal, shaped like a vector (``vector_shape``)."""
        raise NotImplementedError(
            f"{type(self).__name__} does not expose its diagonal; build the preconditioner "
            "from an explicit matrix (CSROperator, StencilOperator, DenseOperator)"
        )

    def to_scipy(self) -> scipy.sparse.csr_matrix:
        """The operator as a SciPy CSR matrix (for operators with explicit entries)."""
        raise NotImplementedError(f"{type(self).__name__} has no explicit sparse matrix")

    def as_scipy(self) -> scipy.sparse.linalg.LinearOperator:
        """A SciPy ``LinearOperator`` applying this operator (through NumPy on the CPU).

        Usable wherever SciPy takes one, e.g. as ``M=`` in ``scipy.sparse.linalg.cg``.
        """
        n = self.n
        np_dtype = numpy_dtype(self.dtype)

        def apply(v: np.ndarray) -> np.ndarray:
            v = np.asarray(v)
            t = torch.as_tensor(v.reshape(-1, n).astype(np_dtype, copy=False), device=self.device)
            out = self._matvec(t.reshape(-1, *self.vector_shape)).reshape(-1, n)
            out = out.detach().cpu().numpy()
            return out.reshape(v.shape) if v.ndim == 1 else out.T.reshape(v.shape)

        def apply_matrix(V: np.ndarray) -> np.ndarray:
            V = np.asarray(V)
            t = torch.as_tensor(np.ascontiguousarray(V.T).astype(np_dtype), device=self.device)
            out = self._matvec(t.reshape(-1, *self.vector_shape)).reshape(-1, n)
            return out.detach().cpu().numpy().T

        return scipy.sparse.linalg.LinearOperator(
            (n, n), matvec=apply, rmatvec=apply if self.symmetric else None,
            matmat=apply_matrix, dtype=np_dtype,
        )

    # -- batching helpers shared by the solvers ------------------------------------------
    def split_batch(
        self, x: torch.Tensor, name: str = "x", fn: str = "matvec"
    ) -> tuple[torch.Tensor, tuple[int, ...], bool]:
        """Reshape ``x`` to ``(batch, *vector_shape)``.

        Returns the reshaped tensor, the batch shape, and whether ``x`` was given flat
        (``(*batch, n)``) rather than in ``vector_shape``.
        """
        vshape = self.vector_shape
        k = len(vshape)
        if x.ndim >= k and tuple(x.shape[x.ndim - k:]) == vshape:
            batch_shape, flat = tuple(x.shape[: x.ndim - k]), k == 1
        elif x.ndim >= 1 and x.shape[-1] == self.n:
            batch_shape, flat = tuple(x.shape[:-1]), True
        else:
            expected = f"(*batch, {', '.join(map(str, vshape))})"
            if vshape != (self.n,):
                expected += f" or (*batch, {self.n})"
            raise ValueError(
                f"{fn}: `{name}` has shape {tuple(x.shape)}, which does not fit an operator of "
                f"shape {self.shape}; expected {expected}"
            )
        return x.reshape(-1, *vshape), batch_shape, flat

    def merge_batch(
        self, xb: torch.Tensor, batch_shape: tuple[int, ...], flat: bool
    ) -> torch.Tensor:
        """Inverse of :meth:`split_batch`."""
        return xb.reshape(*batch_shape, self.n) if flat else xb.reshape(
            *batch_shape, *self.vector_shape
        )

    def _describe_tags(self) -> str:
        return f"symmetric={self.symmetric}, positive_definite={self.positive_definite}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(shape={self.shape}, vector_shape={self.vector_shape}, "
            f"dtype={self.dtype}, device={self.device}, {self._describe_tags()})"
        )


def apply_into(op: LinearOperator, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``op`` applied to ``x`` (``(batch, *op.vector_shape)``), reusing ``out`` on the CPU.

    The solvers' one way to apply an operator in a loop. On the CPU the product is written
    into ``out`` (no page-faulting fresh buffers); on accelerators the caching allocator makes
    a fresh result free, and compiled kernels write it directly, so ``out`` is ignored.
    """
    if x.device.type == "cpu":
        return op._matvec_into(x, out)
    return op._matvec(x)


def _symmetric_dense(matrix: torch.Tensor) -> bool:
    scale = matrix.abs().max()
    tol = 100 * torch.finfo(matrix.dtype).eps * (scale if scale > 0 else 1.0)
    return bool(((matrix - matrix.T).abs() <= tol).all())


class DenseOperator(LinearOperator):
    """A dense ``(n, n)`` tensor as an operator.

    Parameters
    ----------
    matrix : torch.Tensor
        Square dense matrix; its dtype and device are the operator's.
    symmetric : bool, optional
        Checked (cheaply, one pass) when not given.
    """

    def __init__(
        self,
        matrix: torch.Tensor,
        *,
        vector_shape: Sequence[int] | None = None,
        symmetric: bool | None = None,
        positive_definite: bool | None = None,
    ) -> None:
        if matrix.ndim != 2:
            raise ValueError(f"DenseOperator: `matrix` must be 2-D, got shape {tuple(matrix.shape)}")
        if symmetric is None and matrix.shape[0] == matrix.shape[1]:
            symmetric = _symmetric_dense(matrix)
        super().__init__(
            tuple(matrix.shape), matrix.dtype, matrix.device, vector_shape=vector_shape,
            symmetric=symmetric, positive_definite=positive_definite,
        )
        self.matrix = matrix
        self.capturable = True

    def _matvec(self, x: torch.Tensor) -> torch.Tensor:
        return (x.reshape(x.shape[0], -1) @ self.matrix.T).reshape(x.shape)

    def _matvec_into(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        torch.mm(x.reshape(x.shape[0], -1), self.matrix.T, out=out.view(x.shape[0], -1))
        return out

    def _to(self, device, dtype) -> DenseOperator:
        return DenseOperator(
            self.matrix.to(device=device, dtype=dtype), vector_shape=self.vector_shape,
            symmetric=self.symmetric, positive_definite=self.positive_definite,
        )

    def diagonal(self) -> torch.Tensor:
        return self.matrix.diagonal().reshape(self.vector_shape)

    def to_scipy(self) -> scipy.sparse.csr_matrix:
        return scipy.sparse.csr_matrix(self.matrix.detach().cpu().numpy())


class DiagonalOperator(LinearOperator):
    """The operator ``x -> d * x`` for a vector ``d`` (e.g. the Jacobi preconditioner)."""

    def __init__(
        self,
        diagonal: torch.Tensor,
        *,
        symmetric: bool = True,
        positive_definite: bool | None = None,
    ) -> None:
        if positive_definite is None:
            positive_definite = bool((diagonal > 0).all())
        super().__init__(
            (diagonal.numel(), diagonal.numel()), diagonal.dtype, diagonal.device,
            vector_shape=tuple(diagonal.shape), symmetric=symmetric,
            positive_definite=positive_definite,
        )
        self.values = diagonal
        self.capturable = True

    def _matvec(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.values

    def _matvec_into(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        return torch.mul(x, self.values, out=out)

    def _to(self, device, dtype) -> DiagonalOperator:
        return DiagonalOperator(
            self.values.to(device=device, dtype=dtype), positive_definite=self.positive_definite
        )

    def diagonal(self) -> torch.Tensor:
        return self.values

    def to_scipy(self) -> scipy.sparse.csr_matrix:
        return scipy.sparse.diags(self.values.detach().cpu().numpy().ravel()).tocsr()


class CallableOperator(LinearOperator):
    """A function ``x -> A x`` as an operator.

    Parameters
    ----------
    fn : callable
        Maps a vector of shape ``vector_shape`` to one of the same shape; with
        ``batched=True`` it maps ``(batch, *vector_shape)`` at once.
    shape, dtype, device, vector_shape
        As for :class:`LinearOperator`.
    batched : bool
        Whether ``fn`` accepts a leading batch dimension.
    """

    def __init__(
        self,
        fn: Callable[[torch.Tensor], torch.Tensor],
        shape: tuple[int, int],
        *,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str = "cpu",
        vector_shape: Sequence[int] | None = None,
        batched: bool = False,
        symmetric: bool | None = None,
        positive_definite: bool | None = None,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"CallableOperator: `fn` must be callable, got {type(fn)}")
        super().__init__(
            shape, dtype, device, vector_shape=vector_shape, symmetric=symmetric,
            positive_definite=positive_definite,
        )
        self.fn = fn
        self.batched = batched

    def _matvec(self, x: torch.Tensor) -> torch.Tensor:
        if self.batched:
            return self.fn(x).reshape(x.shape)
        return torch.stack([self.fn(xi).reshape(xi.shape) for xi in x])

    def _to(self, device, dtype) -> CallableOperator:
        raise NotImplementedError(
            "CallableOperator cannot move its function; build it again for the new device/dtype"
        )


def aslinearoperator(
    A,
    *,
    shape: tuple[int, int] | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    symmetric: bool | None = None,
    positive_definite: bool | None = None,
) -> LinearOperator:
    """Wrap ``A`` as a :class:`LinearOperator`.

    Accepts a `LinearOperator` (returned as is), a SciPy sparse matrix or array (->
    :class:`~pdekit.linalg.CSROperator`), a torch sparse tensor (CSR or COO -> CSR), a dense
    torch tensor or NumPy array (-> :class:`DenseOperator`), or a callable (needs ``shape``;
    -> :class:`CallableOperator`).

    Parameters
    ----------
    A
        What to wrap.
    shape, dtype, device
        For callables (required ``shape``); for arrays, a conversion target.
    symmetric, positive_definite
        Tags to promise; when omitted they are checked where cheap (sparse and dense
        symmetry) or left unknown.
    """
    from pdekit.linalg.csr import CSROperator

    if isinstance(A, LinearOperator):
        return A if (dtype is None and device is None) else A.to(device, dtype)
    if scipy.sparse.issparse(A):
        return CSROperator.from_scipy(
            A, dtype=dtype, device=device, symmetric=symmetric,
            positive_definite=positive_definite,
        )
    if isinstance(A, torch.Tensor) and A.layout != torch.strided:
        return CSROperator.from_torch(
            A.to(device=device or A.device, dtype=dtype or A.dtype), symmetric=symmetric,
            positive_definite=positive_definite,
        )
    if isinstance(A, (torch.Tensor, np.ndarray)):
        matrix = torch.as_tensor(A)
        if not (matrix.is_floating_point() or matrix.is_complex()):
            matrix = matrix.to(torch.float64)
        matrix = matrix.to(device=device or matrix.device, dtype=dtype or matrix.dtype)
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
            raise ValueError(
                f"aslinearoperator: `A` must be a square matrix, got shape {tuple(matrix.shape)}"
            )
        return DenseOperator(matrix, symmetric=symmetric, positive_definite=positive_definite)
    if callable(A):
        if shape is None:
            raise ValueError("aslinearoperator: a callable `A` needs `shape=(n, n)`")
        return CallableOperator(
            A, shape, dtype=dtype or torch.float64, device=device or "cpu",
            symmetric=symmetric, positive_definite=positive_definite,
        )
    raise TypeError(
        "aslinearoperator: `A` must be a LinearOperator, SciPy sparse matrix, torch tensor, "
        f"NumPy array or callable, got {type(A).__name__}"
    )
