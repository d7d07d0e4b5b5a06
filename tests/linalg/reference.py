"""Slow, obviously-correct reference implementations, used only by the tests."""

from __future__ import annotations

import itertools
import math

import numpy as np


def stencil_matrix_loops(
    grid_shape, coefficients=None, spacing=1.0, bc="dirichlet", solid=None, face_average="arithmetic"
):
    """Dense matrix of -div(a grad u) assembled face by face with Python loops.

    ``coefficients`` is None, a scalar, or an array of ``grid_shape`` (the boundary face
    takes the cell's own coefficient); ``bc`` is a string or a per-axis (lo, hi) list.
    """
    ndim = len(grid_shape)
    n = math.prod(grid_shape)
    if isinstance(bc, str):
        bc = [(bc, bc)] * ndim
    bc = [(b, b) if isinstance(b, str) else tuple(b) for b in bc]
    spacing = [spacing] * ndim if np.isscalar(spacing) else list(spacing)
    a = np.ones(grid_shape) if coefficients is None else (
        np.full(grid_shape, float(coefficients)) if np.isscalar(coefficients)
        else np.asarray(coefficients, dtype=float)
    )
    solid = np.zeros(grid_shape, bool) if solid is None else np.asarray(solid, bool)
    index = np.arange(n).reshape(grid_shape)
    A = np.zeros((n, n))
    for cell in itertools.product(*(range(s) for s in grid_shape)):
        i = index[cell]
        if solid[cell]:
            A[i, i] = 1.0
            continue
        for d in range(ndim):
            for step, side in ((-1, 0), (1, 1)):
                nb = list(cell)
                nb[d] += step
                h2 = spacing[d] ** 2
                if 0 <= nb[d] < grid_shape[d]:
                    nb = tuple(nb)
                    if solid[nb]:
                        continue  # no flux into solids
                    if face_average == "harmonic":
                        face = 2 * a[cell] * a[nb] / (a[cell] + a[nb]) / h2
                    else:
                        face = 0.5 * (a[cell] + a[nb]) / h2
                    A[i, i] += face
                    A[i, index[nb]] -= face
                elif bc[d][side] == "dirichlet":
                    A[i, i] += a[cell] / h2
    return A


def sor_loops(A, b, omega, rtol, maxiter, order=None):
    """Textbook SOR with explicit loops over rows in ``order`` (default natural).

    Returns the number of sweeps until ||b - A x|| <= rtol ||b||.
    """
    A = np.asarray(A)
    n = len(b)
    order = range(n) if order is None else order
    x = np.zeros(n)
    tol = rtol * np.linalg.norm(b)
    for sweep in range(maxiter + 1):
        if np.linalg.norm(b - A @ x) <= tol:
            return sweep
        for i in order:
            sigma = A[i] @ x - A[i, i] * x[i]
            x[i] = (1 - omega) * x[i] + omega * (b[i] - sigma) / A[i, i]
    return maxiter


def ichol0_dense(A):
    """IC(0) by the textbook kij elimination on a dense copy, dropping fill outside A's pattern."""
    A = np.array(A, dtype=float)
    n = A.shape[0]
    pattern = A != 0
    L = np.tril(A)
    for k in range(n):
        L[k, k] = math.sqrt(L[k, k])
        for i in range(k + 1, n):
            if pattern[i, k]:
                L[i, k] /= L[k, k]
        for j in range(k + 1, n):
            for i in range(j, n):
                if pattern[i, j] and pattern[i, k] and pattern[j, k]:
                    L[i, j] -= L[i, k] * L[j, k]
    return L
