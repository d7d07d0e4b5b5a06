"""The shipped KS checkpoints (PDE-Refiner and its MSE U-Net baseline) on fresh trajectories,
and examples/refiner_rollout.py in its quick mode."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

import pdekit
from pdekit.classical.kuramoto_sivashinsky import ks_initial_condition, solve_kuramoto_sivashinsky
from pdekit.linalg._threads import serial_on_cpu
from pdekit.train.rollout import pearson_correlation, rollout

ROOT = Path(__file__).resolve().parents[2]
CHECKPOINTS = ROOT / "solvers" / "checkpoints"


def test_shipped_models_track_fresh_trajectories():
    rng = np.random.default_rng(2024)
    lengths = rng.uniform(57.6, 70.4, 4)
    u0 = np.stack([ks_initial_condition(256, L, rng) for L in lengths])
    with serial_on_cpu(torch.device("cpu")), torch.no_grad():
        u = solve_kuramoto_sivashinsky(torch.tensor(u0), length=torch.tensor(lengths), dt=0.2,
                                       frames=41, burn_in=360).float()
        scalars = torch.tensor(np.stack([np.full(4, 0.8), lengths / 256], axis=1), dtype=torch.float32)
        for name, expected in (("refiner", "pde-refiner"), ("unet", "unet-onestep")):
            model = pdekit.load(CHECKPOINTS / f"{name}-ks.pt", expected=expected)
            first = model(u[:, :1], scalars, generator=torch.Generator().manual_seed(0))[:, 0]
            rel = float(((first - u[:, 4]).norm(dim=-1) / u[:, 4].norm(dim=-1)).mean())
            assert rel < 0.05, (name, rel)
            pred = rollout(model, u[:, :1], scalars, 10, generator=torch.Generator().manual_seed(0))
            # 8 s ahead (about a Lyapunov time) the rollouts are still close to the truth
            assert float(pearson_correlation(pred, u[:, 4::4]).mean(0)[-1]) > 0.9, name


def test_refiner_rollout_example_quick():
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "refiner_rollout.py"), "--quick"],
                            capture_output=True, text=True, timeout=300, cwd=ROOT,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("refiner ") and "high-correlation time" in line for line in lines)
    assert any(line.startswith("unet ") and "high-correlation time" in line for line in lines)
    assert any("spread vs error" in line for line in lines)
