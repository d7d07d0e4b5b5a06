"""Moving meshes for 2D Burgers: the classical Monge-Ampere mesher and the shipped data-free
mesh mover, scored by the interpolation error of the solution against the uniform mesh with
the same nodes (Hu, Wang, Ma, ICLR 2024).

    python examples/mesh_mover.py            # 4 solutions, plot to mesh_mover.png
    python examples/mesh_mover.py --quick    # 1 solution on a coarser reference grid, no plot
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

from pdekit.classical.burgers2d import burgers2d_initial_condition, fourier_interpolate, solve_burgers2d
from pdekit.classical.moving_mesh import (
    gradient_monitor,
    interpolate_from_mesh,
    solve_monge_ampere,
    tangled_cells,
    uniform_mesh,
)
from pdekit.models.checkpoint import load_model

ROOT = Path(__file__).resolve().parents[1]


def main(quick: bool = False) -> dict[str, float]:
    """Solve Burgers from random initial conditions, move 48^2 meshes, return the mean relative
    interpolation errors ``{"uniform", "classical", "learned"}``."""
    fine, count, n = (96, 1, 48) if quick else (192, 4, 48)
    rng = np.random.default_rng(1)
    u0 = torch.tensor(np.stack([burgers2d_initial_condition(fine, rng) for _ in range(count)]))
    u = solve_burgers2d(u0, nu=0.004, t_end=1 / 3, frames=2)[:, -1]  # fronts have formed
    scale = (n - 1) / n  # the 48 periodic nodes i / 48 span [0, 47/48]^2: the mesh's square
    coarse = u[:, :: fine // n, :: fine // n]
    points = uniform_mesh((2 if quick else 4) * (n - 1) + 1, dtype=u.dtype).reshape(-1, 2)
    truth = fourier_interpolate(u, points * scale)

    started = time.perf_counter()
    classical = solve_monge_ampere(gradient_monitor(coarse, alpha=1.0))
    classical_seconds = time.perf_counter() - started
    mover = load_model(ROOT / "solvers" / "checkpoints" / "mesh-mover-burgers2d.pt")
    started = time.perf_counter()
    learned = mover.move(coarse.float()).double()
    learned_seconds = time.perf_counter() - started
    meshes = {"uniform": uniform_mesh(n, dtype=u.dtype)[None].expand(count, -1, -1, -1),
              "classical": classical.mesh, "learned": learned}
    errors = {}
    for name, mesh in meshes.items():
        values = fourier_interpolate(u, mesh.reshape(count, -1, 2) * scale).reshape(count, n, n)
        error = (interpolate_from_mesh(mesh, values, points) - truth).norm(dim=1) / truth.norm(dim=1)
        errors[name] = float(error.mean())
        print(f"{name:9s} interpolation error {errors[name]:.4f}   tangled cells "
              f"{int(tangled_cells(mesh).sum())}")
    print(f"classical Monge-Ampere: {classical.iterations} iterations, {classical_seconds:.2f} s; "
          f"learned mover: {learned_seconds:.3f} s (one network call)")
    if not quick:
        from pdekit.train.tasks.mesh_movers import plot_meshes

        path = plot_meshes(coarse[:2], {"learned mover": learned[:2], "classical": classical.mesh[:2]},
                           "mesh_mover.png")
        print(f"wrote {path}")
    return errors


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
