"""``pdekit bench generate``: dataset-generation throughput, ours against a SciPy solve loop.

Each problem draws the same samples (same generator seeds) as ``pdekit generate`` with the
matching recipe, and makes each sample the way the pipeline does (random inputs, operator,
checked solve, subsampling). Only the solve differs between the methods:

* ``pdekit-multigrid-pcg``: the default reference solve (CG preconditioned by
  :func:`pdekit.linalg.multigrid`), what ``pdekit generate`` uses;
* ``pdekit-ichol0-pcg`` and ``pdekit-cg``: the same with IC(0) or no preconditioner (what
  generation would cost without multigrid);
* ``scipy-spsolve``: a plain loop of :func:`scipy.sparse.linalg.spsolve` (SuperLU) on the
  same matrices (``A.to_scipy()``), the sparse direct solve a user would write.

Reported per problem and method: samples per second, the mean solver iterations, and the
largest relative difference of the solutions to the ``scipy-spsolve`` ones (``error``).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import scipy.sparse.linalg as spla
import torch

from pdekit.bench.record import BenchmarkReport, describe_device, format_table, save_figure
from pdekit.classical.elliptic import solve_elliptic
from pdekit.data.problems import PROBLEMS
from pdekit.data.shards import sample_rng
from pdekit.linalg._threads import serial_on_cpu

__all__ = ["DEFAULT_PROBLEMS", "run"]

# name -> (problem, parameters, reference-solve rtol); the parameters of the recipes
# datasets/darcy.toml and datasets/poisson3d-obstacles.toml.
DEFAULT_PROBLEMS = {
    "darcy-421-85": ("darcy", {"size": 85, "fine_size": 421}, 1e-10),
    "poisson3d-64-obstacles": ("poisson", {
        "shape": (64, 64, 64), "bc": (("dirichlet", "neumann"), "neumann", "neumann"),
        "obstacle_fraction": 0.15, "obstacle_radius": (0.05, 0.15)}, 1e-8),
}
QUICK_PROBLEMS = {
    "darcy-61-16": ("darcy", {"size": 16, "fine_size": 61}, 1e-10),
    "poisson3d-16-obstacles": ("poisson", {
        "shape": (16, 16, 16), "bc": (("dirichlet", "neumann"), "neumann", "neumann"),
        "obstacle_fraction": 0.15, "obstacle_radius": (0.1, 0.2)}, 1e-8),
}
METHODS = ("pdekit-multigrid-pcg", "pdekit-ichol0-pcg", "pdekit-cg", "scipy-spsolve")


def _make_sample(problem, params, rtol: float, method: str, index: int) -> tuple[np.ndarray, int]:
    """One sample made as the pipeline makes it, with ``method``'s solve; (u, iterations)."""
    system = problem.system(params, sample_rng(0, "train", index))
    if method == "scipy-spsolve":
        S = system.A.to_scipy().tocsc()
        u = spla.spsolve(S, system.f.double().numpy().ravel()).reshape(system.A.grid_shape)
        iterations = 0
    else:
        solution = solve_elliptic(system.A, system.f, rtol=rtol, method=method.split("-")[1])
        u, iterations = solution.u.cpu().numpy(), solution.iterations
    fields, _ = system.finish(u, {})
    return fields["u"], iterations


def _bench_problem(report, name, spec, samples: int, methods, echo) -> None:
    pde, overrides, rtol = spec
    problem = PROBLEMS[pde]
    params = problem.Parameters(**overrides)
    reference = None
    for method in sorted(methods, key=lambda m: m != "scipy-spsolve"):  # reference first
        started = time.perf_counter()
        solutions, iterations = [], []
        for index in range(samples):
            u, its = _make_sample(problem, params, rtol, method, index)
            solutions.append(u)
            iterations.append(its)
        seconds = time.perf_counter() - started
        error = None
        if reference is not None:
            error = max(float(np.linalg.norm(u - r) / np.linalg.norm(r))
                        for u, r in zip(solutions, reference, strict=True))
        if method == "scipy-spsolve":
            reference = solutions
        record = report.add(name, method, samples=samples, seconds=seconds,
                            samples_per_second=samples / seconds,
                            iterations=float(np.mean(iterations)) if method != "scipy-spsolve" else None,
                            error=error)
        echo(f"[{name}] {method}: {record['samples_per_second']:.3g} samples/s"
             + (f", {record['iterations']:.1f} iterations" if record["iterations"] else "")
             + (f", max relative difference to spsolve {error:.1e}" if error is not None else ""))


def _add_ratios(records: list[dict]) -> None:
    ours = {r["problem"]: r["samples_per_second"] for r in records
            if r["method"] == "pdekit-multigrid-pcg"}
    for r in records:
        if r["problem"] in ours:
            r["speedup_of_pdekit"] = ours[r["problem"]] / r["samples_per_second"]


def run(
    device: str | torch.device = "cpu",
    *,
    problems: list[str] | None = None,
    samples: int | None = None,
    methods: tuple[str, ...] = METHODS,
    quick: bool = False,
    echo=print,
    **_unused,
) -> BenchmarkReport:
    """Samples per second of dataset generation, our solves against a SciPy ``spsolve`` loop.

    Parameters
    ----------
    device : str
        Only ``"cpu"``: generation runs on the CPU (as ``pdekit generate``'s workers do).
    problems : list of str, optional
        Names from ``DEFAULT_PROBLEMS`` (or ``QUICK_PROBLEMS``).
    samples : int, optional
        Samples per problem and method (default 8 for Darcy, 3 for 3D Poisson; 2 with
        ``quick``).
    methods : tuple of str
        Subset of ``METHODS``; ``scipy-spsolve`` is the reference of the ``error`` column.
    """
    device = torch.device(device)
    if device.type != "cpu":
        raise ValueError(f"bench generate: `device` must be cpu (generation runs on the CPU), got {device}")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"bench generate: unknown method {unknown[0]!r}; available: {METHODS}")
    table = QUICK_PROBLEMS if quick else DEFAULT_PROBLEMS
    known = {**DEFAULT_PROBLEMS, **QUICK_PROBLEMS}
    problems = problems or list(table)
    for name in problems:
        if name not in known:
            raise ValueError(f"bench generate: unknown problem {name!r}; available: {sorted(known)}")
    # One thread, as each of ``pdekit generate``'s worker processes (SuperLU is serial too).
    with serial_on_cpu(device):
        report = BenchmarkReport("generate", describe_device(device))
        echo(f"device: {report.device} (one thread per solve, as generation's workers)")
        for name in problems:
            count = samples or (2 if quick else (8 if known[name][0] == "darcy" else 3))
            pde, overrides, rtol = known[name]
            problem = PROBLEMS[pde]
            _make_sample(problem, problem.Parameters(**overrides), rtol, methods[0], 0)  # warm-up
            _bench_problem(report, name, known[name], count, methods, echo)
    _add_ratios(report.records)
    return report


def plot(report: BenchmarkReport, path: str | Path) -> Path:
    """Bar chart of samples per second, one group per problem."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    problems = list(dict.fromkeys(r["problem"] for r in report.records))
    methods = list(dict.fromkeys(r["method"] for r in report.records))
    fig, axes = plt.subplots(1, len(problems), figsize=(5 * len(problems), 3.8), squeeze=False)
    for ax, problem in zip(axes[0], problems, strict=True):
        rows = {r["method"]: r for r in report.records if r["problem"] == problem}
        values = [rows[m]["samples_per_second"] if m in rows else 0.0 for m in methods]
        ax.barh(range(len(methods)), values, color=["C0" if m.startswith("pdekit") else "C1"
                                                    for m in methods])
        ax.set_yticks(range(len(methods)), methods)
        ax.set_xscale("log")
        ax.set_xlabel("samples per second")
        ax.set_title(problem)
    return save_figure(fig, path, title=f"pdekit bench generate ({report.device})")


def summary_table(report: BenchmarkReport) -> str:
    """Samples per second per problem and method, and our speed-up over each."""
    return format_table(report.records, ["problem", "method", "samples", "seconds",
                                         "samples_per_second", "iterations", "error",
                                         "speedup_of_pdekit"])
