"""``pdekit bench hard-constraints``: training-step and inference time of the physics-informed
hard constraint, global (one least-squares problem) against the mixture of experts (``K``
problems solved as one batch), as the number of sampled collocation points grows
(Chalapathi et al., "Scaling physics-informed hard constraints with mixture-of-experts",
ICLR 2024, figures 4 and 6).

Every configuration uses the same FNO2d backbone on the diffusion-sorption grid (101 x 256 by
default: the CPU recipes' grid) and the same total number of sampled points ``m``: the global
constraint solves one problem with ``m`` PDE rows, the MoE ``K`` problems with ``m / K`` rows
each (plus the global initial and boundary rows). A training step is forward, the physics
loss, backward (through the implicit-function-theorem pass) and an Adam update; inference is
a forward pass in eval mode. The soft-constraint model (the FNO alone) is timed too: the
difference is the constraint layer's cost.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from pdekit.bench.record import BenchmarkReport, describe_device, format_table, save_figure
from pdekit.models.hard_constraint import HardConstraintFNO, SoftConstraintFNO, physics_loss

__all__ = ["plot", "run", "summary_table"]

BACKBONE = dict(modes=(8, 8), width=32, layers=4, fc_dim=128, padding=8)
QUICK_BACKBONE = dict(modes=(3, 3), width=8, layers=2, fc_dim=16, padding=2)


def _grid(nt: int, nx: int, batch: int, device) -> tuple[torch.Tensor, ...]:
    t = torch.linspace(0.0, 500.0 * (nt - 1) / 100, nt, dtype=torch.float64, device=device)
    x = (torch.arange(nx, dtype=torch.float64, device=device) + 0.5) / nx
    u0 = torch.linspace(0.02, 0.18, batch, device=device)[:, None].expand(batch, nx).contiguous()
    return u0, t, x


def _time_model(model, u0, t, x, repeat: int, device) -> dict:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step():
        model.train()
        u = model(u0, t, x)
        loss = physics_loss(model.physics, u, u0, t, x, getattr(model, "last_derivatives", None)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    @torch.no_grad()
    def infer():
        model.eval()
        model(u0, t, x)

    out = {}
    for name, fn in (("train_seconds", step), ("inference_seconds", infer)):
        fn()  # warm-up
        times, iterations = [], []
        for _ in range(repeat):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - start)
            if "iterations" in getattr(model, "last_solve", {}):
                iterations.append(float(model.last_solve["iterations"].float().mean()))
        out[name] = float(np.median(times))
        if iterations:
            out[name.replace("seconds", "lm_iterations")] = float(np.mean(iterations))
    return out


def run(device: str | torch.device = "cpu", *, quick: bool = False, points: list[int] | None = None,
        experts: list[int] | None = None, batch: int = 2, repeat: int = 3,
        grid: tuple[int, int] | None = None, echo=print) -> BenchmarkReport:
    """Time the global hard constraint and the MoE over sampled points and experts.

    Parameters
    ----------
    points : list of int
        Total sampled collocation points ``m`` (default 1000 ... 20000; quick: 200, 400).
    experts : list of int
        Expert counts ``K`` (1 = the global constraint; default 1, 2, 4, 8; quick: 1, 2).
    batch, repeat : int
        Trajectories per step; timed repetitions (median reported) after one warm-up.
    grid : (nt, nx)
        Default (101, 256); quick (11, 32).
    """
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("bench hard-constraints: `device` is cuda but no CUDA device is available")
    nt, nx = grid or ((11, 32) if quick else (101, 256))
    points = points or ([200, 400] if quick else [1000, 2000, 5000, 10000, 20000])
    experts = experts or ([1, 2] if quick else [1, 2, 4, 8])
    backbone = QUICK_BACKBONE if quick else BACKBONE
    report = BenchmarkReport("hard-constraints", describe_device(device))
    u0, t, x = _grid(nt, nx, batch, device)
    problem = f"diffusion-sorption-{nt}x{nx}"
    torch.manual_seed(0)
    soft = SoftConstraintFNO(**backbone).to(device)
    numbers = _time_model(soft, u0, t, x, repeat, device)
    report.add(problem, "pi-sc", experts=0, points=0, batch=batch, **numbers)
    echo(f"soft constraint (FNO alone): train {numbers['train_seconds']:.3g} s, "
         f"inference {numbers['inference_seconds']:.3g} s")
    for m in points:
        for k in experts:
            if nx % k or m // k < 1:
                continue
            torch.manual_seed(0)
            model = HardConstraintFNO(basis=16, experts=k, points=m // k, **backbone).to(device)
            numbers = _time_model(model, u0, t, x, repeat, device)
            method = "pi-hc" if k == 1 else "pi-hc-moe"
            report.add(problem, method, experts=k, points=m, batch=batch, **numbers)
            echo(f"m = {m:6d}, K = {k}: train {numbers['train_seconds']:.3g} s "
                 f"({numbers.get('train_lm_iterations', 0):.1f} LM iterations), "
                 f"inference {numbers['inference_seconds']:.3g} s")
    for r in report.records:
        if r["method"] == "pi-hc-moe":
            base = next((g for g in report.records
                         if g["method"] == "pi-hc" and g["points"] == r["points"]), None)
            if base is not None:
                r["train_speedup"] = base["train_seconds"] / r["train_seconds"]
                r["inference_speedup"] = base["inference_seconds"] / r["inference_seconds"]
    return report


def summary_table(report: BenchmarkReport) -> str:
    """The report as a table (``*_speedup`` > 1: the MoE is faster than the global constraint)."""
    return format_table(report.records, ["problem", "method", "experts", "points", "train_seconds",
                                         "train_lm_iterations", "inference_seconds", "train_speedup",
                                         "inference_speedup"])


def plot(report: BenchmarkReport, path: str | Path) -> Path:
    """Seconds per training step (left) and per inference (right) against sampled points, one
    line per expert count; the soft-constraint FNO as a horizontal line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    hard = [r for r in report.records if r["method"] != "pi-sc"]
    soft = next((r for r in report.records if r["method"] == "pi-sc"), None)
    for ax, key, title in zip(axes, ("train_seconds", "inference_seconds"),
                              ("training step", "inference"), strict=True):
        for k in sorted({r["experts"] for r in hard}):
            rows = sorted((r for r in hard if r["experts"] == k), key=lambda r: r["points"])
            label = "global hard constraint" if k == 1 else f"MoE, K = {k}"
            ax.plot([r["points"] for r in rows], [r[key] for r in rows], "o-", label=label)
        if soft is not None:
            ax.axhline(soft[key], color="0.5", ls="--", label="soft constraint (FNO alone)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("sampled collocation points m (total)")
        ax.set_ylabel("seconds")
        ax.set_title(f"{title}, batch {hard[0]['batch'] if hard else ''}", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    title = f"pdekit bench hard-constraints: {report.device} ({report.date[:10]})"
    return save_figure(fig, path, title=title)
