"""PDE-Refiner against its MSE-trained U-Net baseline on fresh Kuramoto-Sivashinsky trajectories.

Solves a few KS trajectories with the batched ETDRK4 solver (the setup of datasets/ks1d.toml),
loads the shipped checkpoints, rolls both models out from the first frame, and prints the
high-correlation times and PDE-Refiner's sample spread against its actual error.

    python examples/refiner_rollout.py            # 16 trajectories of 128 s, about a minute on a CPU
    python examples/refiner_rollout.py --quick    # 2 trajectories of 8 s, a few seconds
    python examples/refiner_rollout.py cuda       # on a GPU
"""

import sys
from pathlib import Path

import numpy as np
import torch

import pdekit
from pdekit.classical.kuramoto_sivashinsky import ks_initial_condition, solve_kuramoto_sivashinsky
from pdekit.train.rollout import high_correlation_time, pearson_correlation, rollout, spread_and_error

quick = "--quick" in sys.argv
args = [a for a in sys.argv[1:] if not a.startswith("--")]
device = torch.device(args[0] if args else "cpu")
root = Path(__file__).resolve().parent.parent
torch.manual_seed(0)

# 1. Trajectories: L ~ U(57.6, 70.4), 256 points, 360 burn-in frames, frames 0.2 s apart.
count, frames = (2, 41) if quick else (16, 641)
rng = np.random.default_rng(123)
lengths = rng.uniform(57.6, 70.4, count)
u0 = np.stack([ks_initial_condition(256, L, rng) for L in lengths])
u = solve_kuramoto_sivashinsky(torch.tensor(u0), length=torch.tensor(lengths), dt=0.2, frames=frames,
                               burn_in=360).float().to(device)
print(f"{count} KS trajectories of {frames} frames ({(frames - 1) * 0.2:.0f} s)")

# 2. The models step every 4th frame (0.8 s) and are conditioned on that step and dx = L / 256.
scalars = torch.tensor(np.stack([np.full(count, 0.8), lengths / 256], axis=1), dtype=torch.float32,
                       device=device)
window, truth = u[:, :1], u[:, 4::4]
steps = truth.shape[1]
models = {name: pdekit.load(root / "solvers" / "checkpoints" / f"{name}-ks.pt", device=device)
          for name in ("unet", "refiner")}

# 3. Rollouts: Pearson correlation per step, averaged over trajectories; high-correlation time.
predictions = {}
for name, model in models.items():
    pred = rollout(model, window, scalars, steps, generator=torch.Generator(device).manual_seed(0))
    predictions[name] = pred
    corr = pearson_correlation(pred, truth)
    times = high_correlation_time(corr, 0.8)
    first = float(((pred[:, 0] - truth[:, 0]).norm(dim=-1) / truth[:, 0].norm(dim=-1)).mean())
    print(f"{name:8s} high-correlation time {times[0.8]:6.1f} s (0.9: {times[0.9]:5.1f} s), "
          f"first-step relative L2 {first:.2e}")

# 4. PDE-Refiner's uncertainty: rollouts from different noise draws spread where they go wrong.
samples = torch.stack([rollout(models["refiner"], window, scalars, steps,
                               generator=torch.Generator(device).manual_seed(s))
                       for s in range(2 if quick else 4)])
spread, error = spread_and_error(samples, truth)
x, y = spread.flatten().log(), error.flatten().log()
r = float(torch.corrcoef(torch.stack([x, y]))[0, 1])
print(f"refiner  sample spread vs error over {spread.numel()} (trajectory, step) pairs: "
      f"log-log correlation {r:.2f}")
