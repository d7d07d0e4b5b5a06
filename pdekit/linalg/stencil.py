"""Matrix-free 3-, 5- and 7-point operators for ``-div(a grad u)`` on structured grids.

The operator is the standard finite-volume / finite-difference discretisation

.. math::
    (A u)_i = \\sum_{f \\in \\text{faces}(i)} \\frac{a_f}{h_f^2} (u_i - u_{j(f)}),

with face coefficients ``a_f`` averaged from the cell coefficients on either side
(arithmetic mean by default, harmonic on request). At a Dirichlet boundary the outside
value is zero (so ``u_{j}`` drops out and the face still counts on the diagonal); at a
Neumann boundary, and at every face between a fluid and a solid cell, the face carries no
flux and drops out altogether. Solid cells are identity rows (``(A u)_i = u_i``), so the
operator stays symmetric and acts on full-grid vectors; give them ``b = 0``.

With constant coefficient 1, spacing 1 and Dirichlet boundaries this is the textbook
Laplacian: diagonal ``2 * ndim``, off-diagonals ``-1``. Grid shapes count unknowns (interior
nodes for Dirichlet). ``to_scipy()`` returns the identical CSR matrix in C order (last axis
fastest).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import scipy.ndimage
import scipy.sparse
import torch
import torch.nn.functional as F

from pdekit.linalg._compile import cuda_compiled
from pdekit.linalg.operator import LinearOperator, normalize_device, numpy_dtype

__all__ = ["StencilOperator"]

_BCS = ("dirichlet", "neumann")


def _normalize_bc(bc, ndim: int) -> tuple[tuple[str, str], ...]:
    """``"dirichlet"`` / per-axis / per-face boundary conditions -> ((lo, hi), ...) per axis."""

    def one(value, where):
        if not isinstance(value, str) or value.lower() not in _BCS:
            raise ValueError(
                f"StencilOperator: `bc`{where} must be one of {_BCS}, got {value!r}"
            )
        return value.lower()

    if isinstance(bc, str):
        b = one(bc, "")
        return tuple((b, b) for _ in range(ndim))
    bc = list(bc)
    if len(bc) != ndim:
        raise ValueError(
            f"StencilOperator: `bc` must be a string or have one entry per axis ({ndim}), "
            f"got {len(bc)} entries"
        )
    out = []
    for d, entry in enumerate(bc):
        if isinstance(entry, str):
            b = one(entry, f"[{d}]")
            out.append((b, b))
        else:
            entry = list(entry)
            if len(entry) != 2:
                raise ValueError(
                    f"StencilOperator: `bc[{d}]` must be a string or a (low, high) pair, "
                    f"got {entry!r}"
                )
            out.append((one(entry[0], f"[{d}][0]"), one(entry[1], f"[{d}][1]")))
    return tuple(out)


def _axis_slices(ndim: int, axis: int, part: slice) -> tuple:
    """Index selecting ``part`` along grid ``axis`` of a batched tensor ``(B, *grid)``."""
    return (slice(None),) * (1 + axis) + (part,) + (slice(None),) * (ndim - axis - 1)


_LO, _HI = slice(None, -1), slice(1, None)


def _pad_axis(x: torch.Tensor, axis: int, before: int, after: int) -> torch.Tensor:
    """Zero-pad ``x`` along dimension ``axis`` (counted from the front)."""
    pad = [0, 0] * (x.ndim - 1 - axis) + [before, after]
    return F.pad(x, pad)


def _uniform_product(x: torch.Tensor, diag: float, couplings: list[float]) -> torch.Tensor:
    """Functional constant-coefficient stencil (fused into one kernel when compiled)."""
    y = x * diag
    for d, c in enumerate(couplings):
        axis = 1 + d
        n = x.shape[axis]
        up = _pad_axis(x.narrow(axis, 1, n - 1), axis, 0, 1)
        down = _pad_axis(x.narrow(axis, 0, n - 1), axis, 1, 0)
        y = y - c * (up + down)
    return y


def _variable_product(
    x: torch.Tensor, diag: torch.Tensor, couplings: list[torch.Tensor]
) -> torch.Tensor:
    """Functional variable-coefficient stencil (fused into one kernel when compiled)."""
    y = x * diag
    for d, w in enumerate(couplings):
        axis = 1 + d
        n = x.shape[axis]
        up = _pad_axis(w * x.narrow(axis, 1, n - 1), axis, 0, 1)
        down = _pad_axis(w * x.narrow(axis, 0, n - 1), axis, 1, 0)
        y = y - up - down
    return y


_apply_uniform = cuda_compiled(_uniform_product)
_apply_variable = cuda_compiled(_variable_product)


def _parity(grid_shape, device) -> torch.Tensor:
    """``(i_0 + ... + i_{d-1}) % 2`` over a grid (index arithmetic once compiled)."""
    total = torch.zeros((), dtype=torch.long, device=device)
    for d, n in enumerate(grid_shape):
        shape = [1] * len(grid_shape)
        shape[d] = n
        total = total + torch.arange(n, device=device).reshape(shape)
    return total % 2


@cuda_compiled
def _relax_half_uniform(x, b, diag: float, couplings: list[float], parity: int, omega: float):
    """In place: ``x += omega (b - A x) / diag`` on the cells whose index sum has ``parity``
    (one fused kernel on CUDA: reads ``x`` and ``b``, writes ``x``)."""
    step = (b - _uniform_product(x, diag, couplings)) * (omega / diag)
    color = _parity(x.shape[1:], x.device) == parity
    x.add_(torch.where(color, step, torch.zeros_like(step)))


@cuda_compiled
def _relax_half_variable(x, b, diag, couplings: list, parity: int, omega: float):
    """As :func:`_relax_half_uniform` for variable coefficients."""
    step = (b - _variable_product(x, diag, couplings)) * omega / diag
    color = _parity(x.shape[1:], x.device) == parity
    x.add_(torch.where(color, step, torch.zeros_like(step)))


class StencilOperator(LinearOperator):
    """Matrix-free ``-div(a grad u)`` on a 1D, 2D or 3D structured grid.

    Parameters
    ----------
    grid_shape : tuple of int
        Number of unknowns along each axis.
    coefficients : float or array-like, optional
        The diffusion coefficient ``a`` (default 1): a scalar, a cell-wise array of
        ``grid_shape``, or an array with one extra layer on each side (``n + 2`` per axis,
        e.g. the coefficient sampled on the full grid including Dirichlet boundary nodes),
        whose outer layer then sets the boundary faces. Must be positive.
    spacing : float or sequence of float
        Grid spacing ``h`` (per axis); face coefficients are divided by ``h**2``.
    bc : str or sequence
        ``"dirichlet"`` or ``"neumann"``; or one per axis; or a ``(low, high)`` pair per axis.
    solid : bool array of ``grid_shape``, optional
        Solid cells: no flux across their faces, identity rows.
    dtype, device
        Default: those of ``coefficients`` when it is a tensor, else float64 on the CPU.

    Other Parameters
    ----------------
    face_average : {"arithmetic", "harmonic"}
        How a face coefficient is formed from its two cells.

    Examples
    --------
    >>> A = StencilOperator((512, 512))                     # diagonal 4, off-diagonals -1
    >>> A3 = StencilOperator((64, 64, 64), coefficients=a, solid=mask, bc="dirichlet")
    """

    def __init__(
        self,
        grid_shape: Sequence[int],
        coefficients=None,
        *,
        spacing: float | Sequence[float] = 1.0,
        bc: str | Sequence = "dirichlet",
        solid=None,
        face_average: str = "arithmetic",
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        grid_shape = tuple(int(s) for s in grid_shape)
        ndim = len(grid_shape)
        if ndim not in (1, 2, 3) or any(s < 1 for s in grid_shape):
            raise ValueError(
                f"StencilOperator: `grid_shape` must have 1 to 3 positive entries, got {grid_shape}"
            )
        if face_average not in ("arithmetic", "harmonic"):
            raise ValueError(
                "StencilOperator: `face_average` must be 'arithmetic' or 'harmonic', "
                f"got {face_average!r}"
            )
        spacing = (
            (float(spacing),) * ndim if np.isscalar(spacing) else tuple(float(h) for h in spacing)
        )
        if len(spacing) != ndim or any(not (h > 0 and math.isfinite(h)) for h in spacing):
            raise ValueError(
                f"StencilOperator: `spacing` must be positive, one value or one per axis, got {spacing}"
            )
        if dtype is None:
            dtype = coefficients.dtype if isinstance(coefficients, torch.Tensor) else torch.float64
            if not dtype.is_floating_point:
                dtype = torch.float64
        if device is None:
            source = next(
                (t for t in (coefficients, solid) if isinstance(t, torch.Tensor)), None
            )
            device = source.device if source is not None else "cpu"
        device = normalize_device(device)

        self.grid_shape = grid_shape
        self.ndim = ndim
        self.spacing = spacing
        self.bc = _normalize_bc(bc, ndim)
        self.face_average = face_average
        self.coefficients = self._check_coefficients(coefficients, dtype, device)
        self.solid = self._check_solid(solid, device)

        self._uniform = (
            not isinstance(self.coefficients, torch.Tensor)
            and self.solid is None
            and all(b == ("dirichlet", "dirichlet") for b in self.bc)
        )
        if self._uniform:
            a = float(self.coefficients)
            self._uniform_couplings = [a / h**2 for h in spacing]
            self._uniform_diag = 2.0 * sum(self._uniform_couplings)
            self._diag = None
            self._couplings = None
        else:
            self._diag, self._couplings = self._assemble(dtype, device)

        super().__init__(
            (math.prod(grid_shape),) * 2, dtype, device, vector_shape=grid_shape,
            symmetric=True, positive_definite=self._is_positive_definite(),
        )
        self.capturable = True

    @classmethod
    def from_explicit(
        cls,
        diag: torch.Tensor,
        couplings: Sequence[torch.Tensor],
        *,
        spacing: float | Sequence[float] = 1.0,
        bc: str | Sequence = "dirichlet",
        solid=None,
        positive_definite: bool | None = None,
        boundary_terms: Sequence[tuple[torch.Tensor, torch.Tensor]] | None = None,
    ) -> StencilOperator:
        """A stencil operator given by its diagonal and couplings directly.

        ``diag`` has the grid shape; ``couplings[d]`` has ``n_d - 1`` entries along axis
        ``d`` with ``A[i, i + e_d] = A[i + e_d, i] = -couplings[d][i]`` (the layout of
        :meth:`explicit_coefficients`). Used for coarse multigrid levels. ``bc`` and
        ``spacing`` are kept as information (e.g. for grid transfers); they do not enter
        the entries. ``boundary_terms`` (the layout of :meth:`boundary_terms`) records the
        Dirichlet part of the diagonal; zero when omitted.
        """
        grid_shape = tuple(diag.shape)
        ndim = len(grid_shape)
        if len(couplings) != ndim:
            raise ValueError(
                f"StencilOperator.from_explicit: need {ndim} coupling arrays, got {len(couplings)}"
            )
        for d, w in enumerate(couplings):
            expected = tuple(n - 1 if e == d else n for e, n in enumerate(grid_shape))
            if tuple(w.shape) != expected:
                raise ValueError(
                    f"StencilOperator.from_explicit: couplings[{d}] must have shape {expected}, "
                    f"got {tuple(w.shape)}"
                )
        op = cls.__new__(cls)
        op.grid_shape, op.ndim = grid_shape, ndim
        op.spacing = (float(spacing),) * ndim if np.isscalar(spacing) else tuple(spacing)
        op.bc = _normalize_bc(bc, ndim)
        op.face_average = "arithmetic"
        op.coefficients = None
        op.solid = op._check_solid(solid, diag.device)
        op._uniform = False
        op._diag = diag
        op._couplings = [w.to(device=diag.device, dtype=diag.dtype) for w in couplings]
        if boundary_terms is None:
            boundary_terms = []
            for d in range(ndim):
                edge = list(grid_shape)
                edge[d] = 1
                zero = torch.zeros(edge, dtype=diag.dtype, device=diag.device)
                boundary_terms.append((zero, zero.clone()))
        op._boundary_terms = [
            (lo.to(device=diag.device, dtype=diag.dtype), hi.to(device=diag.device, dtype=diag.dtype))
            for lo, hi in boundary_terms
        ]
        LinearOperator.__init__(
            op, (math.prod(grid_shape),) * 2, diag.dtype, diag.device, vector_shape=grid_shape,
            symmetric=True, positive_definite=positive_definite,
        )
        op.capturable = True
        return op

    @property
    def is_explicit(self) -> bool:
        """Built by :meth:`from_explicit` (entries given, not coefficients)."""
        return self.coefficients is None

    # -- construction helpers ------------------------------------------------------------
    def _check_coefficients(self, coefficients, dtype, device):
        if coefficients is None:
            return 1.0
        if np.isscalar(coefficients) or (
            isinstance(coefficients, torch.Tensor) and coefficients.ndim == 0
        ):
            value = float(coefficients)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(
                    f"StencilOperator: `coefficients` must be positive and finite, got {value}"
                )
            return value
        a = torch.as_tensor(coefficients).to(device=device, dtype=dtype)
        padded = tuple(s + 2 for s in self.grid_shape)
        if tuple(a.shape) == self.grid_shape:
            a = F.pad(a[None, None], [1, 1] * self.ndim, mode="replicate")[0, 0] if self.ndim > 1 \
                else torch.cat([a[:1], a, a[-1:]])
        elif tuple(a.shape) != padded:
            raise ValueError(
                f"StencilOperator: `coefficients` must be a scalar or have shape "
                f"{self.grid_shape} (cells) or {padded} (cells plus a boundary layer), "
                f"got {tuple(a.shape)}"
            )
        if not bool(torch.isfinite(a).all()) or not bool((a > 0).all()):
            raise ValueError("StencilOperator: `coefficients` must be positive and finite everywhere")
        return a

    def _check_solid(self, solid, device):
        if solid is None:
            return None
        mask = torch.as_tensor(solid, device=device)
        if tuple(mask.shape) != self.grid_shape:
            raise ValueError(
                f"StencilOperator: `solid` must have shape {self.grid_shape}, got {tuple(mask.shape)}"
            )
        mask = mask.bool()
        return mask if bool(mask.any()) else None

    def _face_coefficients(self, axis: int) -> torch.Tensor:
        """Coefficients on the ``n_axis + 1`` faces along ``axis`` (boundary faces included)."""
        a = self.coefficients
        interior = tuple(
            slice(None) if d == axis else slice(1, -1) for d in range(self.ndim)
        )
        a = a[interior]
        left, right = a.narrow(axis, 0, a.shape[axis] - 1), a.narrow(axis, 1, a.shape[axis] - 1)
        if self.face_average == "harmonic":
            return 2 * left * right / (left + right)
        return 0.5 * (left + right)

    def _assemble(self, dtype, device) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Diagonal and per-axis couplings ``w_d[i]`` between cells ``i`` and ``i + e_d``."""
        diag = torch.zeros(self.grid_shape, dtype=dtype, device=device)
        couplings = []
        fluid = None if self.solid is None else ~self.solid
        for d, (lo, hi) in enumerate(self._face_terms(dtype, device)):
            n = self.grid_shape[d]
            faces = self._faces(d, dtype, device)
            w = faces.narrow(d, 1, n - 1).clone()
            if fluid is not None:
                w = w * (fluid.narrow(d, 0, n - 1) & fluid.narrow(d, 1, n - 1))
            couplings.append(w)
            diag.narrow(d, 0, n - 1).add_(w)
            diag.narrow(d, 1, n - 1).add_(w)
            diag.narrow(d, 0, 1).add_(lo)
            diag.narrow(d, n - 1, 1).add_(hi)
        if self.solid is not None:
            diag = torch.where(self.solid, torch.ones_like(diag), diag)
        return diag, couplings

    def _faces(self, d: int, dtype, device) -> torch.Tensor:
        """Face coefficients over ``h_d^2`` on the ``n_d + 1`` faces along axis ``d``."""
        h2 = self.spacing[d] ** 2
        if isinstance(self.coefficients, torch.Tensor):
            return self._face_coefficients(d) / h2
        face_shape = list(self.grid_shape)
        face_shape[d] += 1
        return torch.full(face_shape, float(self.coefficients) / h2, dtype=dtype, device=device)

    def _face_terms(self, dtype, device) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Dirichlet boundary-face terms per axis: ``(low, high)``, each of the grid shape
        with axis ``d`` of length 1 (zero on Neumann faces and solid cells)."""
        fluid = None if self.solid is None else ~self.solid
        terms = []
        for d, (lo, hi) in enumerate(self.bc):
            n = self.grid_shape[d]
            faces = self._faces(d, dtype, device)
            pair = []
            for kind, face, cell in ((lo, 0, 0), (hi, n, n - 1)):
                term = faces.narrow(d, face, 1).clone()
                if kind != "dirichlet":
                    term.zero_()
                elif fluid is not None:
                    term = term * fluid.narrow(d, cell, 1)
                pair.append(term)
            terms.append(tuple(pair))
        return terms

    def boundary_terms(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The diagonal's Dirichlet boundary part, per axis and side.

        Returns ``[(low_d, high_d) for each axis d]``; ``low_d`` has the grid shape with
        axis ``d`` of length 1 and holds what the low face adds to the diagonal of the
        first cells along ``d`` (``a_f / h_d^2`` on Dirichlet faces, zero on Neumann faces
        and solid cells). Multigrid coarsens these with the true boundary distances.
        """
        if self.is_explicit:
            return self._boundary_terms
        return self._face_terms(self.dtype, self.device)

    def _is_positive_definite(self) -> bool:
        """Every connected fluid region must touch a Dirichlet face (else constants are a
        null space: the operator is only positive semi-definite)."""
        dirichlet_cells = np.zeros(self.grid_shape, dtype=bool)
        for d, (lo, hi) in enumerate(self.bc):
            if lo == "dirichlet":
                dirichlet_cells[_axis_slices(self.ndim, d, slice(0, 1))[1:]] = True
            if hi == "dirichlet":
                dirichlet_cells[_axis_slices(self.ndim, d, slice(-1, None))[1:]] = True
        if self.solid is None:
            return bool(dirichlet_cells.any())
        fluid = ~self.solid.cpu().numpy()
        labels, count = scipy.ndimage.label(fluid)
        if count == 0:
            return True  # all solid: the identity
        touching = np.unique(labels[dirichlet_cells & fluid])
        return bool(np.setdiff1d(np.arange(1, count + 1), touching).size == 0)

    # -- the operator --------------------------------------------------------------------
    @property
    def is_uniform(self) -> bool:
        """Constant coefficient, Dirichlet everywhere, no solid cells (the fastest path)."""
        return self._uniform

    def explicit_coefficients(self) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The diagonal (``grid_shape``) and the couplings ``w_d`` (``n_d - 1`` along axis
        ``d``), so that ``A[i, i + e_d] = A[i + e_d, i] = -w_d[i]``."""
        if self._uniform:
            diag = torch.full(self.grid_shape, self._uniform_diag, dtype=self.dtype,
                              device=self.device)
            couplings = []
            for d, c in enumerate(self._uniform_couplings):
                shape = list(self.grid_shape)
                shape[d] -= 1
                couplings.append(torch.full(shape, c, dtype=self.dtype, device=self.device))
            return diag, couplings
        return self._diag, self._couplings

    def _matvec(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu":
            return self.apply_functional(x)
        return self._matvec_into(x, torch.empty_like(x))

    def _matvec_into(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu":
            return out.copy_(self.apply_functional(x))
        # CPU: in-place sliced updates, no temporaries.
        y = out
        if self._uniform:
            torch.mul(x, self._uniform_diag, out=y)
            for d, c in enumerate(self._uniform_couplings):
                lo, hi = _axis_slices(self.ndim, d, _LO), _axis_slices(self.ndim, d, _HI)
                y[lo].add_(x[hi], alpha=-c)
                y[hi].add_(x[lo], alpha=-c)
            return y
        torch.mul(x, self._diag, out=y)
        for d, w in enumerate(self._couplings):
            lo, hi = _axis_slices(self.ndim, d, _LO), _axis_slices(self.ndim, d, _HI)
            y[lo].addcmul_(w, x[hi], value=-1)
            y[hi].addcmul_(w, x[lo], value=-1)
        return y

    def apply_functional(self, x: torch.Tensor) -> torch.Tensor:
        """The same product written functionally (compiled into one kernel on CUDA)."""
        if self._uniform:
            return _apply_uniform(x, self._uniform_diag, self._uniform_couplings)
        return _apply_variable(x, self._diag, self._couplings)

    def red_mask(self) -> torch.Tensor:
        """Boolean mask of the "red" cells (even index sum); the rest are "black"."""
        if getattr(self, "_red", None) is None:
            self._red = _parity(self.grid_shape, self.device) == 0
        return self._red

    def relax_red_black(
        self,
        x: torch.Tensor,
        b: torch.Tensor,
        omega: float = 1.0,
        *,
        reverse: bool = False,
        scratch: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One red-black SOR sweep on ``x`` (``(batch, *grid_shape)``), in place.

        Updates all red cells from the current ``x``, then all black cells (black first when
        ``reverse``; a forward sweep followed by a reverse one is symmetric, as a multigrid
        smoother needs). ``omega = 1`` is red-black Gauss-Seidel. On CUDA each half-sweep is
        one fused kernel (read ``x`` and ``b``, write ``x``). ``scratch`` (like ``x``) avoids
        an allocation per half-sweep on the CPU.
        """
        for parity in ((1, 0) if reverse else (0, 1)):
            if x.device.type == "cpu":
                scratch = self._matvec_into(x, torch.empty_like(x) if scratch is None else scratch)
                torch.sub(b, scratch, out=scratch)
                scratch.mul_(omega / (self._uniform_diag if self._uniform else self._diag))
                red = self.red_mask()
                x.add_(scratch.mul_(red if parity == 0 else ~red))
            elif self._uniform:
                _relax_half_uniform(x, b, self._uniform_diag, self._uniform_couplings, parity,
                                    float(omega))
            else:
                _relax_half_variable(x, b, self._diag, self._couplings, parity, float(omega))
        return x

    def _to(self, device, dtype) -> StencilOperator:
        if self.is_explicit:
            return StencilOperator.from_explicit(
                self._diag.to(device=device, dtype=dtype),
                [w.to(device=device, dtype=dtype) for w in self._couplings],
                spacing=self.spacing, bc=self.bc,
                solid=None if self.solid is None else self.solid.to(device),
                positive_definite=self.positive_definite,
                boundary_terms=self._boundary_terms,
            )
        coefficients = self.coefficients
        if isinstance(coefficients, torch.Tensor):
            coefficients = coefficients.to(device=device, dtype=dtype)
        return StencilOperator(
            self.grid_shape, coefficients, spacing=self.spacing, bc=self.bc,
            solid=None if self.solid is None else self.solid.to(device),
            face_average=self.face_average, dtype=dtype, device=device,
        )

    def diagonal(self) -> torch.Tensor:
        return self.explicit_coefficients()[0]

    def to_scipy(self) -> scipy.sparse.csr_matrix:
        diag, couplings = self.explicit_coefficients()
        n = self.n
        index = np.arange(n).reshape(self.grid_shape)
        rows, cols, vals = [np.arange(n)], [np.arange(n)], [diag.cpu().numpy().ravel()]
        for d, w in enumerate(couplings):
            lo = tuple(slice(None, -1) if e == d else slice(None) for e in range(self.ndim))
            hi = tuple(slice(1, None) if e == d else slice(None) for e in range(self.ndim))
            values = -w.cpu().numpy().ravel()
            keep = values != 0
            i, j = index[lo].ravel()[keep], index[hi].ravel()[keep]
            rows += [i, j]
            cols += [j, i]
            vals += [values[keep], values[keep]]
        matrix = scipy.sparse.csr_matrix(
            (np.concatenate(vals).astype(numpy_dtype(self.dtype)),
             (np.concatenate(rows), np.concatenate(cols))),
            shape=self.shape,
        )
        matrix.sum_duplicates()
        matrix.sort_indices()
        return matrix

    def _describe_tags(self) -> str:
        kind = "uniform" if self._uniform else "variable"
        return (
            f"grid={self.grid_shape}, {kind}, bc={self.bc}, "
            f"solid={'none' if self.solid is None else int(self.solid.sum())}, "
            + super()._describe_tags()
        )
