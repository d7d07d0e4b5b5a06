"""The Latent Spectral Model and its U-Net backbone on 2D Navier-Stokes, rolled out frame by
frame: the protocol of the FNO and LSM papers (Li et al. 2021, section 5.3; Wu et al. 2023,
table 2), trained by the one Trainer with the ``frame-rollout`` task.

The model sees 10 vorticity frames as channels and predicts the next one; it is rolled out
(its predictions fed back) to 10 predicted frames, and trained through the rollout. Reported:
the relative L2 over the 10 predicted frames (mean and std over the test windows) beside the
persistence baseline (every future frame equal to the last input frame). The same runs as
recipes: ``pdekit train solvers/lsm-ns-cpu.toml`` (and ``unet-ns-cpu``). Run from the
repository root::

    pdekit generate datasets/navier-stokes2d-fno-cpu.toml --out data/navier-stokes2d-fno-cpu
    python examples/lsm_navier_stokes.py --model lsm --epochs 4 --out runs/lsm-ns
    python examples/lsm_navier_stokes.py --model unet --epochs 4 --out runs/unet-ns
    python examples/lsm_navier_stokes.py --quick    # a tiny generated copy, seconds

``--at-once`` predicts all frames in one call instead; ``--every N`` cuts a window at every
``N``-th frame of each trajectory (``--data data/navier-stokes2d-cpu --first 0 --every 8
--at-once``: the frame-window comparison of docs/neural-operators.md).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch

from pdekit.data import generate, open_dataset
from pdekit.data.recipe import recipe_from_dict
from pdekit.models import LatentSpectralModel, UNet
from pdekit.train import Trainer
from pdekit.train.tasks.frame_rollout import FrameRolloutTask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="data/navier-stokes2d-fno-cpu")
    parser.add_argument("--model", choices=["lsm", "unet"], default="lsm")
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--history", type=int, default=10, help="frames the model sees")
    parser.add_argument("--steps", type=int, default=10, help="frames predicted per window")
    parser.add_argument("--first", type=int, default=1,
                        help="first frame of a window (1: t = 1 in the FNO data)")
    parser.add_argument("--every", type=int, default=0,
                        help="a window at every N-th frame (0: one per trajectory)")
    parser.add_argument("--at-once", action="store_true", help="predict all frames in one call")
    parser.add_argument("--normalization", choices=["none", "field", "pointwise"], default="none")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="run folder (metrics.jsonl, best.pt, result.json)")
    parser.add_argument("--quick", action="store_true", help="a tiny generated copy, width 8, 1 epoch")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    folder = args.data
    if args.quick:
        folder = tempfile.mkdtemp(prefix="pdekit-ns-")
        recipe = recipe_from_dict({
            "name": "ns-quick", "pde": "navier-stokes2d", "seed": 0, "splits": {"train": 4, "test": 2},
            "parameters": {"size": 32, "test_size": 32, "nt": 12, "t_end": 11.0, "nu": 1e-4,
                           "initial": "fno", "forcing": "fno"}})
        generate(recipe, folder, progress=False)
        args.width, args.epochs, args.history, args.steps, args.every = 8, 1, 4, 4, 2
    train, test = open_dataset(folder, "train"), open_dataset(folder, "test")
    task = FrameRolloutTask(field="w", history=args.history, steps=args.steps, first=args.first,
                            every=args.every)
    size = train[0]["w"].shape[-1]

    torch.manual_seed(0)
    k = args.steps if args.at_once else 1
    if args.model == "lsm":  # patches of size / 16: one patch per side at the coarsest scale
        model = LatentSpectralModel(args.history, k, width=args.width, patch_size=max(1, size // 16))
    else:
        model = UNet(args.history, k, width=args.width)
    started = time.perf_counter()
    trainer = Trainer(model, train, test, task=task, epochs=args.epochs, batch_size=20, lr=1e-3,
                      weight_decay=1e-4, scheduler="cosine", normalization=args.normalization, out=args.out,
                      progress=False, metadata={"dataset": folder})
    history = trainer.fit()
    seconds = time.perf_counter() - started
    persistence = trainer.test_batches.persistence()
    result = {
        "model": args.model, "width": args.width, "parameters": sum(p.numel() for p in model.parameters()),
        "train_windows": len(trainer.train_batches), "test_windows": len(trainer.test_batches), "grid": size,
        "epochs": args.epochs, "frames_per_call": k, "seconds": seconds,
        "test_relative_l2": history[-1]["test_relative_l2"],
        "test_relative_l2_std": history[-1]["test_relative_l2_std"],
        "persistence_relative_l2": float(persistence.mean()),
        "persistence_relative_l2_std": float(persistence.std()),
    }
    print(json.dumps(result))
    if args.out is not None:
        with open(f"{args.out}/result.json", "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
