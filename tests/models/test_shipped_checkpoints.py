"""The checkpoints shipped in solvers/checkpoints load with no code and do what their docs say."""

from pathlib import Path

import numpy as np
import torch

import pdekit
from pdekit.data.problems import PROBLEMS
from pdekit.data.shards import sample_rng

CHECKPOINTS = Path(__file__).resolve().parents[2] / "solvers" / "checkpoints"


def test_deeponet_antiderivative_checkpoint_on_fresh_functions():
    model = pdekit.load(CHECKPOINTS / "deeponet-antiderivative.pt", expected="deeponet")
    problem = PROBLEMS["antiderivative"]
    params = problem.Parameters()
    # 50 functions never seen in training (another split name gives other random streams)
    pairs = [problem.sample(params, None, sample_rng(12345, "fresh", i))[0] for i in range(50)]
    u = torch.tensor(np.stack([p["u"] for p in pairs]), dtype=torch.float32)  # (50, 100)
    s = torch.tensor(np.stack([p["s"] for p in pairs]), dtype=torch.float32)
    x = torch.linspace(0, 1, 100)
    with torch.no_grad():
        # the per-sample form: (u at the sensors (B, 100), y (B, 1)) -> (B, 1)
        k = torch.arange(50) * 2 % 100
        pointwise = model(u, x[k, None])
        assert pointwise.shape == (50, 1)
        grid = model.cartesian(u, x[:, None])[..., 0]  # (50, 100)
    torch.testing.assert_close(pointwise[:, 0], grid[torch.arange(50), k])
    mse = float((grid - s).square().mean())
    assert mse < 5e-6, mse  # measured: 1.1e-6 (docs/neural-operators.md)
