"""``pdekit bench sor-bandit``: SOR / SSOR-PCG with ``omega`` tuned online by bandits.

Khodak, Chow, Balcan, Talwalkar, "Learning to Relax", ICLR 2024 (arXiv 2310.02246). Every
learner and comparator runs on the same sequence, in one process:

* ``--sequence shifted`` (the paper's synthetic study): ``A + c_t I`` on a 10 x 10 grid,
  high- and low-variance shifts, natural-ordering SOR to 1e-8, ``T`` instances (5,000), a few
  seeds. One cost table per sequence (every instance at all 20 grid values of ``omega``,
  by batched block-diagonal SOR solves, plus Young's ``omega``) serves the comparators and
  the learners (a choice's cost is a lookup: SOR iterations are deterministic).
* ``--sequence heat``: 2D heat equation, Crank-Nicolson, SSOR-PCG with warm starts, grids
  ``nx`` in (25, 50) by default. Iterations come from a cost table as above (steps a period
  of ``kappa`` apart share a matrix and are batched); wall time from one live pass per
  method (learner, preconditioner set-up and solves; not the assembly of ``A_t``, ``b_t``),
  reported relative to unpreconditioned CG.

The small SOR systems run fastest on one thread, so the benchmark sets
``torch.set_num_threads(1)`` while it runs and restores the previous value.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from pdekit.bench.record import BenchmarkReport, describe_device, format_table, save_figure
from pdekit.classical.sor_tuning import (
    ChebCB,
    HeatEquationSequence,
    PooledChebCB,
    ShiftedLaplacianSequence,
    TsallisINF,
    TsallisINFCB,
    best_fixed_omega,
    fixed_omega_costs,
    instance_optimal_costs,
    pcg_cost_table,
    play,
    sor_cost_table,
)
from pdekit.linalg import cg, ssor
from pdekit.linalg._threads import serial_on_cpu

__all__ = ["plot", "run", "summary_table"]

SEQUENCES = ("shifted", "heat")
FIXED_OMEGAS = {"shifted": (1.0, 1.2, 1.4, 1.6, 1.8), "heat": (1.0, 1.5)}
CHECKPOINTS = (500, 2000, 5000)
RTOL = 1e-8
CURVE_POINTS = 200


def _learners(sequence: str, context_range, seed: int) -> dict:
    bins = 5 if sequence == "shifted" else 6  # as in the paper's two experiments
    return {
        "tsallis-inf": TsallisINF(seed=seed),
        "tsallis-inf-cb": TsallisINFCB(context_range=context_range, bins=bins, seed=seed),
        "chebcb": ChebCB(context_range=context_range, seed=seed),
        "pooled-chebcb": PooledChebCB(context_range=context_range, seed=seed),
    }


def _curve(costs: np.ndarray) -> tuple[list[int], list[float]]:
    """Cumulative iterations at about CURVE_POINTS instances (for the plot)."""
    cumulative = np.cumsum(costs, axis=-1)
    T = cumulative.shape[-1]
    index = np.unique(np.linspace(1, T, min(CURVE_POINTS, T)).round().astype(int))
    return index.tolist(), cumulative[..., index - 1].tolist()


def _method_costs(table, sequence: str, seed: int, context_range) -> dict:
    """Per-instance costs of every method on one table."""
    out = {}
    for omega in FIXED_OMEGAS[sequence]:
        out[f"sor-omega-{omega:g}" if sequence == "shifted" else f"ssor-pcg-omega-{omega:g}"] = (
            fixed_omega_costs(table, omega), omega, 0.0)
    omega, costs = best_fixed_omega(table)
    out["best-fixed-omega"] = (costs, omega, 0.0)
    out["instance-optimal"] = (instance_optimal_costs(table), None, 0.0)
    if "young" in table.extra:
        out["instance-optimal-young"] = (table.extra["young"], None, 0.0)
    out["instance-optimal-grid"] = (table.costs.min(axis=1), None, 0.0)
    for name, learner in _learners(sequence, context_range, seed).items():
        result = play(learner, table)
        out[name] = (result.costs, None, result.seconds)
    return out


def _add_records(report, problem, runs: list[dict], seeds: list[int], extra=None) -> None:
    """Summary records (mean over seeds) and per-seed records for every method."""
    methods = list(runs[0])
    best = np.mean([r["best-fixed-omega"][0].sum() for r in runs])
    optimal = np.mean([r["instance-optimal"][0].sum() for r in runs])
    T = len(runs[0]["best-fixed-omega"][0])
    for method in methods:
        totals = np.array([r[method][0].sum() for r in runs], dtype=np.float64)
        omegas = [r[method][1] for r in runs]
        record = dict(
            kind="summary", seeds=len(seeds), instances=T,
            iterations=float(totals.mean()), iterations_per_instance=float(totals.mean() / T),
            iterations_std=float(totals.std()),
            ratio_to_best_fixed=float(totals.mean() / best),
            ratio_to_instance_optimal=float(totals.mean() / optimal),
            seconds=float(np.mean([r[method][2] for r in runs])),
        )
        if omegas[0] is not None:
            record["omega"] = omegas[0] if len(set(omegas)) == 1 else omegas
        for checkpoint in CHECKPOINTS:
            if checkpoint <= T:
                part = np.mean([r[method][0][:checkpoint].sum() for r in runs])
                part_best = np.mean([r["best-fixed-omega"][0][:checkpoint].sum() for r in runs])
                record[f"ratio_to_best_fixed_at_{checkpoint}"] = float(part / part_best)
        if extra and method in extra:
            record.update(extra[method])
        report.add(problem, method, **record)
        index, curves = _curve(np.mean([r[method][0] for r in runs], axis=0))
        report.add(problem, method, kind="curve", instance=index, cumulative_iterations=curves)


def _run_shifted(report, instances, seeds, quick, echo) -> None:
    variances = ("high",) if quick else ("high", "low")
    for variance in variances:
        problem = f"shifted-{variance}-variance"
        runs = []
        for seed in seeds:
            sequence = ShiftedLaplacianSequence(instances, variance, seed=seed)
            start = time.perf_counter()
            table = sor_cost_table(sequence)
            seconds = time.perf_counter() - start
            echo(f"[{problem}] seed {seed}: cost table of {instances} x 20 omegas "
                 f"(+ Young) in {seconds:.1f} s")
            report.add(problem, "cost-table", kind="setup", seed=seed, instances=instances,
                       setup_seconds=seconds, solves=int(table.costs.size + len(table)))
            runs.append(_method_costs(table, "shifted", seed, sequence.context_range))
        _add_records(report, problem, runs, seeds)


def _live_pass(sequence, choose, *, preconditioned: bool = True):
    """Solve the sequence with ``omega = choose(t)`` (None: plain CG).

    The wall time counts what differs between methods: the learner's choice and update,
    building the SSOR preconditioner, and the solve; not assembling ``A_t`` and ``b_t``
    (the simulation's own work, the same for every method).
    """
    iterations = np.empty(len(sequence), dtype=np.int64)
    seconds = 0.0
    for t in range(len(sequence)):
        A, b, x0 = sequence.operator(t), sequence.rhs(t), sequence.x0(t)
        start = time.perf_counter()
        omega = choose.pick(t) if preconditioned else None
        M = ssor(A, omega) if preconditioned else None
        result = cg(A, b, x0, rtol=RTOL, maxiter=10_000, M=M)
        iterations[t] = result.iterations
        if preconditioned:
            choose.feedback(omega, result.iterations)
        seconds += time.perf_counter() - start
    return iterations, seconds


class _Fixed:
    def __init__(self, omega):
        self.omega = omega

    def pick(self, t):
        return self.omega

    def feedback(self, omega, cost):
        pass


class _Learned:
    def __init__(self, learner, contexts):
        self.learner, self.contexts = learner, contexts

    def pick(self, t):
        return self.learner.choose(self.contexts[t] if self.learner.contextual else None)

    def feedback(self, omega, cost):
        self.learner.update(omega, cost)


def _run_heat(report, instances, seeds, grids, echo) -> None:
    for nx in grids:
        problem = f"heat2d-{nx}"
        start = time.perf_counter()
        sequence = HeatEquationSequence(nx, instances)
        echo(f"[{problem}] reference trajectory of {instances} steps in "
             f"{time.perf_counter() - start:.1f} s; kappa in "
             f"[{sequence.context_range[0]:.3g}, {sequence.context_range[1]:.3g}]")
        start = time.perf_counter()
        table = pcg_cost_table(sequence)
        seconds = time.perf_counter() - start
        echo(f"[{problem}] cost table ({instances} x 20 omegas) in {seconds:.1f} s")
        report.add(problem, "cost-table", kind="setup", instances=instances, n=(nx - 1) ** 2,
                   setup_seconds=seconds, solves=int(table.costs.size))
        runs = [_method_costs(table, "heat", seed, sequence.context_range) for seed in seeds]
        # one live pass per method: wall time with the solves, relative to plain CG
        live = {}
        cg_iterations, cg_seconds = _live_pass(sequence, None, preconditioned=False)
        live["cg"] = (cg_iterations, cg_seconds)
        best_omega = runs[0]["best-fixed-omega"][1]
        passes = {"ssor-pcg-omega-1": _Fixed(1.0), "best-fixed-omega": _Fixed(best_omega)}
        for name, learner in _learners("heat", sequence.context_range, seeds[0]).items():
            passes[name] = _Learned(learner, sequence.contexts)
        extra = {}
        for name, chooser in passes.items():
            iterations, wall = _live_pass(sequence, chooser)
            live[name] = (iterations, wall)
            expected = runs[0][name][0] if name in runs[0] else None
            extra[name] = dict(
                live_iterations=int(iterations.sum()), live_seconds=wall,
                wall_time_ratio_to_cg=wall / cg_seconds,
                live_table_mismatches=None if expected is None else int(
                    np.sum(iterations != expected)),
            )
            echo(f"[{problem}] live {name}: {int(iterations.sum())} iterations, {wall:.1f} s "
                 f"({wall / cg_seconds:.2f} x CG)")
        report.add(problem, "cg", kind="summary", instances=instances, n=(nx - 1) ** 2,
                   iterations=float(cg_iterations.sum()),
                   iterations_per_instance=float(cg_iterations.mean()),
                   live_iterations=int(cg_iterations.sum()), live_seconds=cg_seconds,
                   seconds=cg_seconds, wall_time_ratio_to_cg=1.0)
        _add_records(report, problem, runs, seeds, extra)
        for record in report.records:
            if record["problem"] == problem:
                record.setdefault("n", (nx - 1) ** 2)


def run(
    device: str | torch.device = "cpu",
    *,
    sequence: str = "shifted",
    instances: int | None = None,
    seeds: int | None = None,
    quick: bool = False,
    echo=print,
    grids: tuple[int, ...] | None = None,
    **kw,
) -> BenchmarkReport:
    """Run the SOR-bandit benchmark and return its report.

    Parameters
    ----------
    device : str
        Only the CPU is supported (the solves are thousands of tiny sequential systems).
    sequence : {"shifted", "heat"}
        Which sequence of systems.
    instances : int, optional
        ``T``: default 5,000 (``quick``: 60).
    seeds : int, optional
        Number of seeds (learners' sampling; for ``shifted`` also the sequences): default 3
        (``quick``: 1).
    quick : bool
        A smoke run of a few seconds.
    grids : tuple of int, optional
        Heat-equation grid sizes ``nx`` (default (25, 50); ``quick``: (10,)).
    """
    if kw:
        unknown = sorted(k for k, v in kw.items() if v is not None)
        if unknown:
            raise ValueError(f"bench sor-bandit: unknown options {unknown}; valid: sequence, "
                             "instances, seeds, quick, grids")
    device = torch.device(device)
    if device.type != "cpu":
        raise ValueError(f"bench sor-bandit: `device` must be cpu, got {device}")
    if sequence not in SEQUENCES:
        raise ValueError(f"bench sor-bandit: `sequence` must be one of {SEQUENCES}, got {sequence!r}")
    if instances is None:
        instances = 60 if quick else 5000
    if isinstance(instances, bool) or not isinstance(instances, int) or instances < 1:
        raise ValueError(f"bench sor-bandit: `instances` must be a positive integer (a "
                         f"non-empty sequence), got {instances!r}")
    seeds = (1 if quick else 3) if seeds is None else seeds
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"bench sor-bandit: `seeds` must be a positive integer, got {seeds!r}")
    grids = ((10,) if quick else (25, 50)) if grids is None else tuple(int(g) for g in grids)
    report = BenchmarkReport("sor-bandit", describe_device(device))
    with serial_on_cpu(torch.device("cpu")):
        report.device = describe_device(device)
        echo(f"device: {report.device}; sequence {sequence}, {instances} instances, "
             f"{seeds} seed(s)")
        if sequence == "shifted":
            _run_shifted(report, instances, list(range(seeds)), quick, echo)
        else:
            _run_heat(report, instances, list(range(seeds)), grids, echo)
    return report


def plot(report: BenchmarkReport, path: str | Path) -> Path:
    """Cumulative iterations against instances, one line per method, one panel per problem
    (as the paper's figures); for the heat equation also wall time relative to CG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = [r for r in report.records if r.get("kind") == "curve"]
    problems = list(dict.fromkeys(r["problem"] for r in curves))
    heat = [r for r in report.records if r.get("kind") == "summary"
            and "wall_time_ratio_to_cg" in r]
    panels = len(problems) + (1 if heat else 0)
    fig, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 4.8), squeeze=False)
    styles = {"tsallis-inf": "-", "tsallis-inf-cb": "-", "chebcb": "-", "pooled-chebcb": "-",
              "best-fixed-omega": "--", "instance-optimal": ":"}
    for ax, problem in zip(axes[0], problems, strict=False):
        for r in curves:
            if r["problem"] != problem or r["method"] in ("instance-optimal-young",
                                                          "instance-optimal-grid"):
                continue
            style = styles.get(r["method"], (0, (1, 3)))
            width = 2.2 if r["method"] in styles else 1.2
            ax.plot(r["instance"], r["cumulative_iterations"], linestyle=style, linewidth=width,
                    label=r["method"])
        ax.set_xlabel("instance")
        ax.set_ylabel("cumulative iterations (mean over seeds)")
        ax.set_yscale("log")
        ax.set_title(problem, fontsize=10)
        ax.legend(fontsize=7)
    if heat:
        ax = axes[0][-1]
        methods = list(dict.fromkeys(r["method"] for r in heat))
        for method in methods:
            rows = sorted((r for r in heat if r["method"] == method), key=lambda r: r["n"])
            ax.plot([r["n"] for r in rows], [r["wall_time_ratio_to_cg"] for r in rows], "-o",
                    label=method)
        ax.set_xscale("log")
        ax.set_xlabel("matrix dimension")
        ax.set_ylabel("wall time / CG wall time")
        ax.legend(fontsize=7)
    return save_figure(fig, path, title=f"pdekit bench sor-bandit: {report.device} ({report.date[:10]})")


def summary_table(report: BenchmarkReport) -> str:
    """Per problem and method: iterations (total and per instance, mean over seeds), ratios to
    the best fixed and the instance-optimal ``omega``, and (heat) wall time relative to CG."""
    rows = [r for r in report.records if r.get("kind") == "summary"]
    columns = ["problem", "method", "omega", "iterations_per_instance", "iterations",
               "ratio_to_best_fixed", "ratio_to_instance_optimal"]
    columns += [f"ratio_to_best_fixed_at_{c}" for c in CHECKPOINTS
                if any(f"ratio_to_best_fixed_at_{c}" in r for r in rows)]
    if any("wall_time_ratio_to_cg" in r for r in rows):
        columns += ["live_seconds", "wall_time_ratio_to_cg"]
    return format_table(rows, columns)
