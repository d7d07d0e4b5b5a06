"""Named test problems (SciPy's template): structured PDE operators with right-hand sides."""

from __future__ import annotations

import numpy as np
import scipy.ndimage
import torch

from pdekit.linalg import StencilOperator


def connected_obstacles(shape, fraction, seed, keep_face_axis=0):
    """Random solid cells, with fluid pockets cut off from the low face of ``keep_face_axis``
    made solid too (so the operator stays positive definite)."""
    rng = np.random.default_rng(seed)
    solid = rng.random(shape) < fraction
    labels, _ = scipy.ndimage.label(~solid)
    face = tuple(slice(0, 1) if d == keep_face_axis else slice(None) for d in range(len(shape)))
    keep = np.setdiff1d(np.unique(labels[face]), [0])
    return ~np.isin(labels, keep)


def darcy_coefficients(shape, seed):
    """A thresholded smooth random field with values 12 and 3 (the Darcy benchmark's contrast)."""
    rng = np.random.default_rng(seed)
    field = scipy.ndimage.gaussian_filter(rng.standard_normal(shape), sigma=2.0)
    return np.where(field >= 0, 12.0, 3.0)


def _build(name):
    if name == "poisson2d":
        return StencilOperator((24, 20))
    if name == "poisson3d":
        return StencilOperator((10, 9, 8))
    if name == "poisson2d-spacing":
        return StencilOperator((20, 16), spacing=(1 / 21, 1 / 17))
    if name == "poisson2d-obstacles":
        return StencilOperator((24, 20), solid=connected_obstacles((24, 20), 0.2, 1))
    if name == "poisson3d-obstacles-mixed":
        shape = (10, 9, 8)
        return StencilOperator(
            shape, solid=connected_obstacles(shape, 0.15, 2),
            bc=[("dirichlet", "neumann"), "neumann", ("neumann", "dirichlet")],
        )
    if name == "darcy2d":
        shape = (22, 22)
        return StencilOperator(shape, torch.from_numpy(darcy_coefficients(shape, 3)))
    if name == "darcy3d-harmonic":
        shape = (9, 8, 7)
        return StencilOperator(
            shape, torch.from_numpy(darcy_coefficients(shape, 4)), face_average="harmonic",
        )
    raise KeyError(name)


PROBLEM_NAMES = [
    "poisson2d", "poisson3d", "poisson2d-spacing", "poisson2d-obstacles",
    "poisson3d-obstacles-mixed", "darcy2d", "darcy3d-harmonic",
]


def make_problem(name, dtype=torch.float64, device="cpu", batch=(), seed=0):
    """``(A, b)`` for a named problem; ``b`` is zero on solid cells."""
    A = _build(name).to(device, dtype)
    g = torch.Generator().manual_seed(seed)
    b = torch.rand(*batch, *A.grid_shape, generator=g, dtype=torch.float64)
    if A.solid is not None:
        b = b * (~A.solid.cpu())
    return A, b.to(device=device, dtype=dtype)
