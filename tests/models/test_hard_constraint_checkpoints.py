"""The shipped diffusion-sorption checkpoints (solvers/checkpoints/{hc-moe,soft}-diffsorp.pt)
load with no code and score, on fresh initial values solved by the classical solver, what
docs/hard-constraints.md reports."""

from pathlib import Path

import numpy as np
import torch

import pdekit
from pdekit.classical.diffusion_sorption import solve_diffusion_sorption

CHECKPOINTS = Path(__file__).resolve().parents[2] / "solvers" / "checkpoints"


def _scores(model, u, t, x):
    """Relative L2 over the space-time field and the largest PDE residual (the model's own
    derivatives for the hard constraint)."""
    with torch.no_grad():
        pred = model(u[:, 0], t, x)
        derivatives = getattr(model, "last_derivatives", None)
        if derivatives is not None:
            derivatives = tuple(d.double() for d in derivatives)
        residual = model.physics.field_residuals(pred.double(), u[:, 0].double(), t, x, derivatives)["pde"]
    error = float(((pred - u).flatten(1).norm(dim=1) / u.flatten(1).norm(dim=1)).mean())
    return error, float(residual.abs().max())


def test_shipped_diffusion_sorption_checkpoints():
    u0 = np.array([0.03, 0.17])  # not in the training set (a continuous draw)
    u = torch.from_numpy(solve_diffusion_sorption(u0, nx=1024, nt=101, substeps=10).u[:, :, ::4]).float()
    t = torch.linspace(0.0, 500.0, 101, dtype=torch.float64)
    x = ((torch.arange(1024, dtype=torch.float64) + 0.5) / 1024)[::4]
    moe = pdekit.load(CHECKPOINTS / "hc-moe-diffsorp.pt", expected="pi-hc")
    soft = pdekit.load(CHECKPOINTS / "soft-diffsorp.pt", expected="pi-sc")
    assert moe.experts == 4 and moe.metadata["task"]["name"] == "physics-informed"
    (moe_error, moe_residual), (soft_error, soft_residual) = _scores(moe, u, t, x), _scores(soft, u, t, x)
    # measured (CPU budget, docs/hard-constraints.md): MoE 0.36 / residual 0.31, soft 0.14 / 3.6
    assert moe_error < 0.45 and soft_error < 0.25, (moe_error, soft_error)
    assert moe_residual < 0.5 and moe_residual < soft_residual / 5, (moe_residual, soft_residual)
