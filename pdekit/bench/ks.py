"""``pdekit bench ks``: Kuramoto-Sivashinsky trajectory generation, our batched ETDRK4 against
scipy's Radau on the same pseudo-spectral right-hand side, in one process.

The work is the PDE-Refiner training trajectory (Lippe et al. 2023, appendix D.1; the LPSDA
generator): 256 points, ``L ~ U(57.6, 70.4)``, a sum-of-sines initial condition, 360 burn-in
frames and 140 stored frames 0.2 s apart (100 s of simulated time). Methods:

* ``pdekit-etdrk4-batch``: :func:`~pdekit.classical.kuramoto_sivashinsky.solve_kuramoto_sivashinsky`
  on all trajectories at once (float64, 8 steps per frame), what ``pdekit generate`` does;
* ``pdekit-etdrk4-single``: the same, one trajectory at a time;
* ``scipy-radau``: ``solve_ivp(ks_rhs, method="Radau", rtol=atol=1e-9)``, one trajectory at a
  time: the reference data generator's integrator.

Reported: trajectories per second, and ``error``: the largest relative difference to the Radau
trajectory over the first 4 s from the initial condition (chaos amplifies any difference
afterwards: after the 72 s burn-in the two agree only to about 1e-4).
On the GPU only the batched method runs on the device (Radau stays on the CPU).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from scipy.integrate import solve_ivp

from pdekit.bench.record import BenchmarkReport, describe_device, format_table, save_figure, synchronize
from pdekit.classical.kuramoto_sivashinsky import ks_initial_condition, ks_rhs, solve_kuramoto_sivashinsky
from pdekit.linalg._threads import serial_on_cpu

__all__ = ["METHODS", "plot", "run", "summary_table"]

METHODS = ("pdekit-etdrk4-batch", "pdekit-etdrk4-single", "scipy-radau")
POINTS, DT, BURN_IN, FRAMES, SUBSTEPS = 256, 0.2, 360, 140, 8
COMPARE_FRAMES = 21  # 4 s


def _inputs(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    lengths = rng.uniform(57.6, 70.4, count)
    u0 = np.stack([ks_initial_condition(POINTS, L, rng) for L in lengths])
    return u0, lengths


def _etdrk4(u0, lengths, device, burn_in, frames) -> np.ndarray:
    out = solve_kuramoto_sivashinsky(torch.tensor(u0, device=device), length=torch.tensor(lengths),
                                     dt=DT, frames=frames, burn_in=burn_in, substeps=SUBSTEPS)
    synchronize(device)
    return out.cpu().numpy()


def _radau(u0, length, burn_in, frames) -> np.ndarray:
    times = DT * np.arange(burn_in + frames)
    sol = solve_ivp(ks_rhs, (0.0, times[-1]), u0, method="Radau", t_eval=times, rtol=1e-9,
                    atol=1e-9, args=(length, 1.0))
    if not sol.success:
        raise RuntimeError(f"bench ks: Radau failed: {sol.message}")
    return sol.y.T  # every frame, the burn-in included


def run(
    device: str | torch.device = "cpu",
    *,
    trajectories: int | None = None,
    reference_trajectories: int | None = None,
    quick: bool = False,
    echo=print,
    **_unused,
) -> BenchmarkReport:
    """Trajectories per second of KS generation: batched ETDRK4 vs scipy Radau.

    Parameters
    ----------
    trajectories : int, optional
        Trajectories of the batched run (default 256; 16 with ``quick``).
    reference_trajectories : int, optional
        Trajectories integrated by Radau and by the single-trajectory ETDRK4 (default 3; 1 with
        ``quick``, which also shortens the burn-in to 40 frames and keeps 30).
    """
    device = torch.device(device)
    count = trajectories or (16 if quick else 256)
    slow = reference_trajectories or (1 if quick else 3)
    burn_in, frames = (40, 30) if quick else (BURN_IN, FRAMES)
    u0, lengths = _inputs(max(count, slow))
    report = BenchmarkReport("ks", describe_device(device))
    problem = f"ks-{POINTS}-{burn_in}+{frames}"
    echo(f"device: {report.device}; {problem}: {burn_in} burn-in + {frames} frames of {DT} s, "
         f"{SUBSTEPS} ETDRK4 steps per frame")
    with serial_on_cpu(device):
        _etdrk4(u0[:2], lengths[:2], device, 1, 2)  # warm-up
        started = time.perf_counter()
        batch = _etdrk4(u0[:count], lengths[:count], device, burn_in, frames)
        seconds = time.perf_counter() - started
        started = time.perf_counter()
        single = [_etdrk4(u0[i : i + 1], lengths[i : i + 1], device, burn_in, frames)[0] for i in range(slow)]
        single_seconds = time.perf_counter() - started
        started = time.perf_counter()
        reference = [_radau(u0[i], lengths[i], burn_in, frames) for i in range(slow)]
        radau_seconds = time.perf_counter() - started

    # accuracy over the first 4 s from the initial condition (untimed; the same kernel)
    start = _etdrk4(u0[:slow], lengths[:slow], device, 0, COMPARE_FRAMES)

    def error(_ours) -> float:
        return max(float(np.abs(o - r[:COMPARE_FRAMES]).max() / np.abs(r[:COMPARE_FRAMES]).max())
                   for o, r in zip(start, reference, strict=True))

    radau_rate = slow / radau_seconds
    rows = [("pdekit-etdrk4-batch", count, seconds, error(batch[:slow])),
            ("pdekit-etdrk4-single", slow, single_seconds, error(single)),
            ("scipy-radau", slow, radau_seconds, None)]
    for method, n, secs, err in rows:
        record = report.add(problem, method, trajectories=n, seconds=secs,
                            samples_per_second=n / secs, speedup_over_radau=(n / secs) / radau_rate,
                            error=err)
        echo(f"[{problem}] {method}: {record['samples_per_second']:.3g} trajectories/s"
             + (f", max relative difference to Radau over the first 4 s {err:.1e}" if err is not None
                else ""))
    return report


def plot(report: BenchmarkReport, path: str | Path) -> Path:
    """Bar chart of trajectories per second (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 2.8))
    methods = [r["method"] for r in report.records]
    values = [r["samples_per_second"] for r in report.records]
    ax.barh(range(len(methods)), values, color=["C0" if m.startswith("pdekit") else "C1" for m in methods])
    ax.set_yticks(range(len(methods)), methods)
    ax.set_xscale("log")
    ax.set_xlabel("trajectories per second")
    for i, r in enumerate(report.records):
        ax.text(values[i], i, f" {r['speedup_over_radau']:.3g}x", va="center", fontsize=8)
    return save_figure(fig, path, title=f"pdekit bench ks: {report.records[0]['problem']} ({report.device})")


def summary_table(report: BenchmarkReport) -> str:
    """Trajectories per second per method and the speed-up over Radau."""
    return format_table(report.records, ["problem", "method", "trajectories", "seconds",
                                         "samples_per_second", "speedup_over_radau", "error"])
