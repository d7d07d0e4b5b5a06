"""The shipped mesh-mover, MM-PDE and uniform-GNN checkpoints load with no code and behave on a
fresh Burgers state (figures in docs/mesh-movers.md)."""

from pathlib import Path

import numpy as np
import torch

import pdekit
from pdekit.classical.burgers2d import burgers2d_initial_condition, solve_burgers2d
from pdekit.classical.moving_mesh import tangled_cells

CHECKPOINTS = Path(__file__).resolve().parents[2] / "solvers" / "checkpoints"


def _states():
    u0 = torch.tensor(burgers2d_initial_condition(96, np.random.default_rng(7)))[None]
    u = solve_burgers2d(u0, nu=0.004, t_end=0.4, frames=13)[0, 10:12, ::2, ::2]  # dt = 1/30
    return u.float()


def test_shipped_mover_and_solvers():
    u = _states()
    mover = pdekit.load(CHECKPOINTS / "mesh-mover-burgers2d.pt", expected="mesh-mover")
    mesh = mover.move(u[:1])
    assert mesh.shape == (1, 48, 48, 2) and int(tangled_cells(mesh).sum()) == 0
    assert float(mesh[0, 0, :, 0].abs().max()) == 0 and float((mesh[0, :, -1, 1] - 1).abs().max()) == 0
    persistence = float((u[1] - u[0]).square().mean())
    for name in ("mmpde", "gnn-uniform"):
        model = pdekit.load(CHECKPOINTS / f"{name}-burgers2d.pt", expected=name).eval()
        with torch.no_grad():
            pred = model(u[:1], torch.tensor([10 / 30]))
        assert pred.shape == (1, 48, 48)
        # on this state: 5.4 % (MM-PDE) and 6.7 % (uniform GNN) of persistence's squared error
        assert float((pred[0] - u[1]).square().mean()) < 0.2 * persistence
