"""Convergence of pdekit's geometric multigrid on model problems (the table in docs/multigrid.md).

For each problem: the V-cycle convergence factor (geometric mean over the last three of twelve
cycles) and the number of multigrid-preconditioned CG iterations to rtol 1e-8. Runs in about a
minute on a laptop CPU.
"""

import numpy as np
import scipy.ndimage
import torch

from pdekit.classical.poisson import random_obstacles
from pdekit.linalg import StencilOperator, cg, multigrid


def thresholded_field(shape, seed):
    """A smooth Gaussian field thresholded to the values 12 and 3 (Darcy-like contrast)."""
    rng = np.random.default_rng(seed)
    field = scipy.ndimage.gaussian_filter(rng.standard_normal(shape), sigma=2.0)
    return torch.from_numpy(np.where(field >= 0, 12.0, 3.0))


def obstacles(shape, fraction, seed, scattered=False):
    """Spheres and boxes (pdekit's obstacle generator) or, with ``scattered``, independent
    random cells covering about ``fraction`` of the grid; fluid pockets cut off from the first
    face are made solid."""
    rng = np.random.default_rng(seed)
    if not scattered:
        return random_obstacles(shape, rng, fraction=fraction)
    labels, _ = scipy.ndimage.label(rng.random(shape) >= fraction)
    return ~np.isin(labels, np.setdiff1d(np.unique(labels[0]), [0]))


def report(name, A, **options):
    b = torch.rand(A.grid_shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    if A.solid is not None:
        b[A.solid] = 0
    M = multigrid(A, **options)
    norms = M.solve(b, rtol=0.0, maxiter=12).residual_norms
    factor = float((norms[-1] / norms[-4]) ** (1 / 3))
    iterations = cg(A, b, rtol=1e-8, M=M).iterations
    print(f"| {name} | {M.num_levels} | {factor:.2f} | {iterations} |")


print("| problem | levels | V-cycle factor | PCG iterations |\n|---|---|---|---|")
for n in (64, 128, 256, 255):
    report(f"2D Poisson {n}^2", StencilOperator((n, n)))
report("2D Poisson 100x77, mixed Dirichlet/Neumann",
       StencilOperator((100, 77), bc=[("dirichlet", "neumann"), "neumann"]))
for n in (32, 64):
    report(f"3D Poisson {n}^3, V(3,3)", StencilOperator((n,) * 3))
report("3D Poisson 32^3, V(2,2)", StencilOperator((32,) * 3), pre_sweeps=2)
for n in (64, 128):
    report(f"2D Darcy 12:3 {n}^2", StencilOperator((n, n), thresholded_field((n, n), 1)))
for n in (32, 64):
    report(f"3D Darcy 12:3 {n}^3", StencilOperator((n,) * 3, thresholded_field((n,) * 3, 1)))
for n in (64, 128, 256):
    report(f"2D spheres/boxes 20% {n}^2", StencilOperator((n, n), solid=obstacles((n, n), 0.2, 1)))
for n in (32, 64):
    report(f"3D spheres/boxes 20% {n}^3", StencilOperator((n,) * 3, solid=obstacles((n,) * 3, 0.2, 2)))
for n in (64, 128):
    report(f"2D scattered cells 20% {n}^2",
           StencilOperator((n, n), solid=obstacles((n, n), 0.2, 1, scattered=True)))
