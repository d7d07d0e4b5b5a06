"""The shipped Latent Spectral Model on Darcy flow: its error at other grid resolutions than
the 85 x 85 it was trained on, and its inference time against the classical solve.

1. Resolution study. The Darcy generator solves on 421 x 421 and stores every 5th node
   (85 x 85); ``datasets/darcy-test43.toml`` and ``datasets/darcy-test141.toml`` store the same
   test coefficients and solves at every 10th and every 3rd node. The model is applied
   (a) directly at the new grid: it is convolutional and patch-based (zero padding to a
   multiple of ``16 p``), and its per-point normalisation statistics are resampled bilinearly
   to the grid by the model itself (exact subsampling for 43 x 43), and (b) through the
   training grid: the input interpolated bilinearly to 85 x 85, the prediction interpolated
   back.
2. Timing on one CPU thread (or on ``--device cuda``, model and classical solves alike): the
   model per sample at batch 1 and batched, against the classical multigrid-PCG solve of the
   generator (421 x 421, rtol 1e-10) and against a direct classical solve at 85 x 85 (whose
   error against the 421 x 421 reference is reported too).

Run from the repository root (after generating the three test sets)::

    pdekit generate datasets/darcy.toml --out data/darcy
    pdekit generate datasets/darcy-test43.toml --out data/darcy-test43
    pdekit generate datasets/darcy-test141.toml --out data/darcy-test141
    python examples/lsm_darcy_study.py --json runs/lsm-darcy-study.json

``--quick`` uses two freshly generated samples instead of the datasets (seconds);
``--timing-only`` skips the resolution study (it needs no test sets then);
``--resolution-only`` skips the timing (for a new checkpoint: the timing does not depend on
the weights, and it wants a machine with nothing else running).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import pdekit
from pdekit.bench.record import describe_device, synchronize
from pdekit.classical.darcy import darcy_coefficient, solve_darcy, subsample
from pdekit.data import open_dataset
from pdekit.models import NormalizedModel
from pdekit.train.metrics import relative_l2

FINE = 421


def through_training_grid(model: NormalizedModel, a: torch.Tensor) -> torch.Tensor:
    """Interpolate ``a`` to the training grid, predict, interpolate the prediction back."""
    size, train_size = a.shape[-1], model.input_mean.shape[-1]
    coarse = F.interpolate(a, size=(train_size, train_size), mode="bilinear", align_corners=True)
    return F.interpolate(model(coarse), size=(size, size), mode="bilinear", align_corners=True)


def predict(fn, a: torch.Tensor, batch: int = 20) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([fn(a[i:i + batch]) for i in range(0, len(a), batch)])


def timed_solve(a: np.ndarray, device: torch.device | str) -> tuple[np.ndarray, float]:
    """The generator's classical solve (multigrid-PCG, rtol 1e-10) on ``device``, and its seconds."""
    synchronize(device)
    started = time.perf_counter()
    u, _ = solve_darcy(a, rtol=1e-10, method="multigrid", device=device)
    synchronize(device)
    return u, time.perf_counter() - started


def fresh_samples(count: int, seed: int, device: torch.device | str = "cpu",
                  ) -> tuple[list[np.ndarray], list[np.ndarray], list[float]]:
    """``count`` coefficients and reference solutions on the 421 x 421 grid (the generator's
    coefficient and solve), with the seconds of each solve (the first, a warm-up, repeated)."""
    rng = np.random.default_rng(seed)
    coefficients, solutions, seconds = [], [], []
    for k in range(count):
        a = darcy_coefficient(FINE, rng)
        u, elapsed = timed_solve(a, device)
        if k == 0:
            u, elapsed = timed_solve(a, device)
        seconds.append(elapsed)
        coefficients.append(a)
        solutions.append(u)
    return coefficients, solutions, seconds


def summary(errors: torch.Tensor) -> dict:
    return {"relative_l2": float(errors.mean()), "relative_l2_std": float(errors.std()),
            "samples": len(errors)}


def inference_timing(model: NormalizedModel, fine_a: list[np.ndarray], fine_u: list[np.ndarray],
                     solve_seconds: list[float], batch: int, device: torch.device) -> dict:
    """Seconds per sample of ``model`` at batch 1 and at ``batch`` against the classical solves
    at 421 x 421 (``solve_seconds``) and at 85 x 85 (timed here, with their error)."""
    a85 = torch.tensor(np.stack([subsample(x, 5) for x in fine_a]), dtype=torch.float32)[:, None]
    a85 = a85.to(device)
    timing: dict = {}
    with torch.no_grad():
        model(a85[:1])  # warm-up
        calls = []
        for i in range(len(a85)):
            synchronize(device)
            started = time.perf_counter()
            model(a85[i:i + 1])
            synchronize(device)
            calls.append(time.perf_counter() - started)
        timing["lsm_batch1_seconds"] = float(np.median(calls))
        x = a85[torch.arange(batch) % len(a85)]
        calls = []
        for _ in range(3):
            synchronize(device)
            started = time.perf_counter()
            model(x)
            synchronize(device)
            calls.append((time.perf_counter() - started) / batch)
        timing["batch"] = batch
        timing["lsm_batched_seconds_per_sample"] = float(np.median(calls))
    timing["classical_421_seconds"] = float(np.median(solve_seconds))
    coarse_seconds, coarse_errors = [], []
    for a, u in zip(fine_a, fine_u, strict=True):
        u85, elapsed = timed_solve(subsample(a, 5), device)
        coarse_seconds.append(elapsed)
        ref = subsample(u, 5)
        coarse_errors.append(float(np.linalg.norm(u85 - ref) / np.linalg.norm(ref)))
    timing["classical_85_seconds"] = float(np.median(coarse_seconds))
    timing["classical_85_relative_l2"] = float(np.mean(coarse_errors))
    timing["speedup_batch1"] = timing["classical_421_seconds"] / timing["lsm_batch1_seconds"]
    timing["speedup_batched"] = timing["classical_421_seconds"] / timing["lsm_batched_seconds_per_sample"]
    timing["samples"] = len(fine_a)
    print(f"LSM per sample: {timing['lsm_batch1_seconds'] * 1e3:.1f} ms (batch 1), "
          f"{timing['lsm_batched_seconds_per_sample'] * 1e3:.1f} ms (batch {batch}); "
          f"classical 421 x 421: {timing['classical_421_seconds'] * 1e3:.0f} ms "
          f"(speed-up {timing['speedup_batch1']:.1f}x, {timing['speedup_batched']:.1f}x); "
          f"classical 85 x 85: {timing['classical_85_seconds'] * 1e3:.1f} ms at relative L2 "
          f"{timing['classical_85_relative_l2']:.4f} against the 421 x 421 solve")
    return timing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="solvers/checkpoints/lsm-darcy.pt")
    parser.add_argument("--data", nargs=3, default=["data/darcy-test43", "data/darcy", "data/darcy-test141"],
                        help="test sets at 43, 85 and 141 nodes per side")
    parser.add_argument("--timing-samples", type=int, default=10, help="classical solves to time")
    parser.add_argument("--json", default=None)
    parser.add_argument("--quick", action="store_true", help="two fresh samples instead of the datasets")
    parser.add_argument("--device", default="cpu", help="where the model and the timed solves run")
    parser.add_argument("--timing-only", action="store_true", help="skip the resolution study")
    parser.add_argument("--resolution-only", action="store_true", help="skip the timing")
    args = parser.parse_args()
    if args.timing_only and args.resolution_only:
        parser.error("--timing-only and --resolution-only exclude each other")
    torch.set_num_threads(1)
    device = torch.device(args.device)

    model = pdekit.load(args.checkpoint, expected="lsm").to(device)
    fresh = 2 if args.quick else 0 if args.resolution_only else args.timing_samples
    fine_a, fine_u, solve_seconds = fresh_samples(fresh, seed=12345, device=device)
    result: dict = {"checkpoint": args.checkpoint, "device": describe_device(device), "resolution": {},
                    "timing": {}}

    # 1. resolution study
    studied = [] if args.timing_only else zip((43, 85, 141), args.data, strict=True)
    for size, folder in studied:
        if args.quick:
            factor = (FINE - 1) // (size - 1)
            a = torch.tensor(np.stack([subsample(x, factor) for x in fine_a]), dtype=torch.float32)[:, None]
            u = torch.tensor(np.stack([subsample(x, factor) for x in fine_u]), dtype=torch.float32)[:, None]
        else:
            test = open_dataset(folder, "test")
            a = torch.stack([test[i]["a"] for i in range(len(test))])[:, None]
            u = torch.stack([test[i]["u"] for i in range(len(test))])[:, None]
        a, u = a.to(device), u.to(device)
        direct = relative_l2(predict(model, a), u).cpu()  # statistics resampled by the model
        via = relative_l2(predict(lambda x: through_training_grid(model, x), a), u).cpu()
        result["resolution"][size] = {"direct": summary(direct), "through_85": summary(via)}
        print(f"{size:>3} x {size:<3} direct: {direct.mean():.4f} +- {direct.std():.4f}   "
              f"through 85 x 85: {via.mean():.4f} +- {via.std():.4f}   ({len(direct)} samples)")

    # 2. timing (one thread, or the device): model at batch 1 and batched, classical at 421 and 85
    if not args.resolution_only:
        result["timing"] = inference_timing(model, fine_a, fine_u, solve_seconds, 4 if args.quick else 20,
                                            device)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
