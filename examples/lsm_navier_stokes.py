"""The Latent Spectral Model and its U-Net backbone on 2D Navier-Stokes: the next 10 vorticity
frames from the previous 10, predicted at once (the frame-window protocol of the LSM paper,
Wu et al. 2023, section 4.1, without its autoregression), trained by the one Trainer.

Windows of 20 consecutive stored frames are cut from each trajectory of a generated
``navier-stokes2d`` dataset (every ``--stride``-th start); frames are channels, so the models
map ``(B, 10, H, W)`` to ``(B, 10, H, W)``. Reported: the test relative L2 over the 10 output
frames (mean and std over the test windows) beside the persistence baseline (every future
frame equal to the last input frame). Run from the repository root::

    pdekit generate datasets/navier-stokes2d-cpu.toml --out data/navier-stokes2d-cpu
    python examples/lsm_navier_stokes.py --model lsm --epochs 8 --out runs/lsm-ns
    python examples/lsm_navier_stokes.py --model unet --epochs 8 --out runs/unet-ns
    python examples/lsm_navier_stokes.py --quick    # a tiny generated copy, seconds
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
from pdekit.train.metrics import relative_l2


class FrameWindows(torch.utils.data.Dataset):
    """Items ``{"in0".."in{k-1}", "out0".."out{k-1}"}``: ``k`` consecutive frames and the ``k``
    after them, from every trajectory of ``dataset`` (field ``w``) at every ``stride``-th start."""

    def __init__(self, dataset, frames: int = 10, stride: int = 8):
        self.k = frames
        trajectories = torch.stack([dataset[i]["w"] for i in range(len(dataset))])  # (N, T, H, W)
        starts = range(0, trajectories.shape[1] - 2 * frames + 1, stride)
        self.windows = torch.cat([trajectories[:, s:s + 2 * frames] for s in starts])
        self.field_info = {**{f"in{i}": {"role": "input"} for i in range(frames)},
                           **{f"out{i}": {"role": "output"} for i in range(frames)}}

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        w = self.windows[i]
        return {**{f"in{j}": w[j] for j in range(self.k)},
                **{f"out{j}": w[self.k + j] for j in range(self.k)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="data/navier-stokes2d-cpu")
    parser.add_argument("--model", choices=["lsm", "unet"], default="lsm")
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--stride", type=int, default=8)
    parser.add_argument("--out", default=None, help="run folder (metrics.jsonl, best.pt, result.json)")
    parser.add_argument("--quick", action="store_true", help="a tiny generated copy, width 8, 1 epoch")
    args = parser.parse_args()
    torch.set_num_threads(1)

    folder = args.data
    if args.quick:
        folder = tempfile.mkdtemp(prefix="pdekit-ns-")
        recipe = recipe_from_dict({
            "name": "ns-quick", "pde": "navier-stokes2d", "seed": 0, "splits": {"train": 4, "test": 2},
            "parameters": {"size": 32, "test_size": 32, "nt": 12, "t_end": 1.0, "nu": 1e-4}})
        generate(recipe, folder, progress=False)
        args.width, args.epochs, args.frames, args.stride = 8, 1, 4, 2
    train = FrameWindows(open_dataset(folder, "train"), args.frames, args.stride)
    test = FrameWindows(open_dataset(folder, "test"), args.frames, args.stride)
    size = train.windows.shape[-1]

    torch.manual_seed(0)
    k = args.frames
    if args.model == "lsm":  # patches of size / 16: one patch per side at the coarsest scale
        model = LatentSpectralModel(k, k, width=args.width, patch_size=max(1, size // 16))
    else:
        model = UNet(k, k, width=args.width)
    started = time.perf_counter()
    trainer = Trainer(model, train, test, epochs=args.epochs, batch_size=20, lr=1e-3, weight_decay=1e-4,
                      scheduler="cosine", normalization="field", out=args.out, progress=False)
    history = trainer.fit()
    seconds = time.perf_counter() - started
    last = test.windows[:, k - 1:k].expand(-1, k, -1, -1)
    persistence = relative_l2(last, test.windows[:, k:])
    result = {
        "model": args.model, "width": args.width, "parameters": sum(p.numel() for p in model.parameters()),
        "train_windows": len(train), "test_windows": len(test), "grid": size, "epochs": args.epochs,
        "seconds": seconds, "test_relative_l2": history[-1]["test_relative_l2"],
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
