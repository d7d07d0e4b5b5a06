"""Layer 4: benchmarks users can run (``pdekit bench NAME``).

Each benchmark runs ours and the peers on the same work in one process and returns a
:class:`~pdekit.bench.record.BenchmarkReport` (written as JSON, with a plot and a table).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from pdekit.bench.record import BenchmarkReport, busy_cores_elsewhere, contention_warning

__all__ = ["BENCHMARKS", "Benchmark", "join_reports", "run_benchmark"]


@dataclass(frozen=True)
class Benchmark:
    """A registered benchmark: how to run it, plot it and summarise it."""

    name: str
    description: str
    run: Callable[..., BenchmarkReport]
    plot: Callable[[BenchmarkReport, Path], Path]
    table: Callable[[BenchmarkReport], str]


def _module_benchmark(name: str, module: str, description: str) -> Callable[[], Benchmark]:
    """A lazily imported benchmark module exposing ``run``, ``plot`` and ``summary_table``."""

    def load() -> Benchmark:
        mod = importlib.import_module(f"pdekit.bench.{module}")
        return Benchmark(name, description, mod.run, mod.plot, mod.summary_table)

    return load


BENCHMARKS: dict[str, Callable[[], Benchmark]] = {
    "linalg": _module_benchmark("linalg", "linalg", "SpMV and CG: ours vs SciPy, torch CSR and PyAMG"),
    "generate": _module_benchmark("generate", "generate",
                                  "dataset generation: samples per second, ours vs a SciPy spsolve loop"),
    "ot": _module_benchmark("ot", "ot", "optimal transport: Sinkhorn and Sinkhorn-Newton-Sparse vs POT"),
    "train": _module_benchmark("train", "train", "training throughput: the Trainer vs a bare PyTorch loop"),
    "dcdm": _module_benchmark("dcdm", "dcdm", "learned preconditioner (DCDM) vs CG, IC(0), multigrid and "
                              "PyAMG on Poisson systems with changing obstacles"),
    "sor-bandit": _module_benchmark("sor-bandit", "sor_bandit",
                                    "SOR relaxation factor tuned online by bandits vs fixed omega"),
    "ks": _module_benchmark("ks", "ks", "Kuramoto-Sivashinsky generation: batched ETDRK4 vs scipy Radau"),
    "hard-constraints": _module_benchmark("hard-constraints", "hard_constraints",
                                          "physics-informed hard constraint: global vs mixture of experts, "
                                          "time per step against sampled points"),
    "mesh-movers": _module_benchmark("mesh-movers", "mesh_movers",
                                     "learned mesh mover vs the classical Monge-Ampere mesher; MM-PDE's "
                                     "k-NN graphs vs SciPy's k-d tree"),
}


def run_benchmark(
    name: str,
    *,
    device: str = "cpu",
    json_path: str | Path | None = None,
    plot_path: str | Path | None = None,
    echo=print,
    **options,
) -> BenchmarkReport:
    """Run benchmark ``name``; write its JSON and plot; print its table. With ``sources`` (paths
    of saved reports of ``name``) nothing runs: their records are joined (:func:`join_reports`),
    then tabulated, written and plotted as one report.

    Before a run, the CPU cores that other processes keep busy are measured
    (:func:`~pdekit.bench.record.busy_cores_elsewhere`) and stored in the report; a CPU run
    that competes with them for cores echoes a warning first: its timings may not be
    representative."""
    if name not in BENCHMARKS:
        raise ValueError(f"bench: unknown benchmark {name!r}; available: {sorted(BENCHMARKS)}")
    bench = BENCHMARKS[name]()
    sources = options.pop("sources", None)
    if sources:
        report = join_reports(name, sources)
    else:
        busy = busy_cores_elsewhere()
        warning = contention_warning(busy) if torch.device(device).type == "cpu" else None
        if warning:
            echo(f"bench: {warning}")
        report = bench.run(torch.device(device), echo=echo, **options)
        report.busy_cores_elsewhere = busy
    echo(bench.table(report))
    if json_path is not None:
        echo(f"wrote {report.write_json(json_path)}")
        plot_path = plot_path or Path(json_path).with_suffix(".png")
    if plot_path is not None:
        echo(f"wrote {bench.plot(report, plot_path)}")
    return report


def join_reports(name: str, paths) -> BenchmarkReport:
    """One report holding the records of the saved reports ``paths`` of benchmark ``name`` (e.g.
    runs at several grid sizes or options, to plot together). Its device is theirs where they
    agree, else each distinct one joined by ``" / "``; its date is the latest."""
    reports = [BenchmarkReport.read_json(path) for path in paths]
    if not reports:
        raise ValueError("bench: `sources` names no report")
    for path, report in zip(paths, reports, strict=True):
        if report.benchmark != name:
            raise ValueError(f"bench: {str(path)!r} is a {report.benchmark!r} report, not {name!r}")
    devices = list(dict.fromkeys(r.device for r in reports))
    return BenchmarkReport(name, " / ".join(devices), [rec for r in reports for rec in r.records],
                           max(r.date for r in reports))
