"""Generate a time-dependent dataset on a GPU, time it, and check it against a CPU solve.

The default recipe is the LSM paper's Navier-Stokes data in FNO's set-up
(datasets/navier-stokes2d-fno.toml: viscosity 1e-5, solved on 256 x 256 with 8,000 steps to
t = 20, stored on 64 x 64), about a day on two CPU threads. This script generates the first
``--samples`` trajectories of each split on ``--device``, ``--batch`` at a time, projects the
time of the whole dataset from that pace, then re-solves the first ``--cpu-samples`` training
trajectories on the CPU and reports how far the two solutions are apart per stored time (the
random draws are the same; rounding differs, and this flow is chaotic, so the gap grows with
time).

    python examples/generate_on_gpu.py --device cuda --samples 100 --batch 100
    python examples/generate_on_gpu.py --quick     # the 64 x 64-solved recipe, 2 samples, any device

The full dataset, as the command line writes it:
``pdekit generate datasets/navier-stokes2d-fno.toml --out data/navier-stokes2d-fno --device cuda
--batch 200`` (docs/datasets.md). Run from the repository root.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch

from pdekit.data import PROBLEMS, generate, load_recipe, open_dataset
from pdekit.data.shards import sample_rng


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default="datasets/navier-stokes2d-fno.toml")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--samples", type=int, default=16, help="trajectories per split to generate")
    parser.add_argument("--batch", type=int, default=None,
                        help="solved at once (default: --samples where the samples allow it)")
    parser.add_argument("--cpu-samples", type=int, default=1, help="re-solved on the CPU (0: no check)")
    parser.add_argument("--quick", action="store_true", help="the 64^2-solved recipe, 2 samples")
    args = parser.parse_args(argv)
    if args.quick:
        args.recipe, args.samples = "datasets/navier-stokes2d-fno-cpu.toml", 2
    full = load_recipe(args.recipe)
    recipe = full.replace(samples=args.samples)
    problem = PROBLEMS[full.pde]
    params = problem.for_split(full.parameters, "train")
    # a whole split at once, unless a sample would then depend on its batch (dt from the CFL number)
    batch = args.batch or (args.samples if problem.batch_invariant(full.parameters) else problem.batch_size)
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()  # generate returns once the shards are on disk
        generate(recipe, folder, device=args.device, batch=batch, progress=False)
        seconds = time.perf_counter() - started
        count, total = sum(recipe.splits.values()), sum(full.splits.values())
        print(f"{recipe.name} on {args.device}, batch {batch}: {count} trajectories in {seconds:.1f} s "
              f"({seconds / count:.2f} s each); all {total}: about {seconds / count * total / 60:.0f} min "
              "at this pace")
        if args.cpu_samples <= 0:
            return
        train = open_dataset(folder, "train")
        field = train.outputs[0]
        ours = np.stack([train[i][field].numpy() for i in range(args.cpu_samples)])
        train.close()
    rngs = [sample_rng(full.seed, "train", i) for i in range(args.cpu_samples)]
    started = time.perf_counter()
    reference = np.stack([values[field] for values, _ in problem.sample_batch(params, full.solver, rngs)])
    cpu_seconds = time.perf_counter() - started
    gap = (np.linalg.norm((ours - reference).reshape(*ours.shape[:2], -1), axis=-1)
           / np.linalg.norm(reference.reshape(*reference.shape[:2], -1), axis=-1)).max(axis=0)
    print(f"CPU ({torch.get_num_threads()} threads): {args.cpu_samples} trajectories in {cpu_seconds:.1f} s "
          f"({cpu_seconds / args.cpu_samples:.2f} s each)")
    times = problem.layout(params).coords["t"]
    print("relative L2 gap, device against CPU, per stored time (largest over the checked trajectories):")
    print("  " + "  ".join(f"t={t:g}: {g:.1e}" for t, g in zip(times, gap, strict=True)))


if __name__ == "__main__":
    main()
