"""``pdekit bench dcdm``: the learned preconditioner against classical ones on a sequence of
pressure-Poisson systems whose obstacles change (Kaneda et al. 2023, Sec. 5).

Problems ``poisson3d-N`` (default 64 and, on a GPU, 128 and 256): ``instances`` systems on an
``N^3`` grid, each with a new random obstacle layout (spheres and boxes, Neumann at their faces;
Dirichlet on the low-x face, Neumann elsewhere, as ``datasets/poisson3d-obstacles.toml``) whose
solid fraction steps from 0 to ``max_fraction``, and a Gaussian-random-field source. Methods:

* ``pdekit-cg``, ``pdekit-pcg-ichol0``, ``pdekit-pcg-multigrid`` (ours; the preconditioners are
  set up again for every system, as they must be when the obstacles change),
* ``pyamg-rs-pcg`` (PyAMG's Ruge-Stuben AMG as CG's preconditioner, set up per system),
* ``pdekit-dcdm`` (a network in :func:`pdekit.linalg.dcdm`, ``depth`` 2 by default, the
  paper's, and the network on the system's grid alone unless ``scales`` (e.g. ``(1, 2, 4)``)
  cycles it over coarser grids too; no set-up:
  the same network serves every system) and ``pdekit-fcg-dcdm`` (the network as ``M`` in
  flexible CG, run by default on a GPU only).

``methods`` runs a subset by these names (e.g. ``("pdekit-cg", "pdekit-dcdm")`` where the
slower classical baselines of a large grid are already measured).

The network is ``checkpoint``, or by default the shipped one of the problem's dimension
(``solvers/checkpoints/dcdm-poisson3d-64.pt``, ``dcdm-poisson2d.pt`` for ``poisson2d-N``).

Each method runs once to ``rtol`` (default 1e-6); from its residual history come the iterations
to 1e-4 and to ``rtol``. ``seconds`` is the measured solve time to ``rtol``; ``seconds_1e-4``
is the set-up plus the solve time scaled by the fraction of the iterations (an estimate from
the per-iteration time).

The plot: residual against iteration and against time (set-up included) on the first size's
median system, iterations to 1e-4 against the solid fraction (bars per method where every problem
holds one system, ``--instances 1``), and, when the report holds several grid sizes of one
dimension (e.g. ``--problems poisson3d-32,poisson3d-64``), iterations to 1e-4 against the grid
size (median over the systems, min-max bars). Reports of several runs joined into one plot label
the learned methods with their depth and scales where these differ.
"""

from __future__ import annotations

import itertools
import re
import time
from pathlib import Path

import numpy as np
import torch

from pdekit.bench.record import BenchmarkReport, describe_device, format_table, save_figure, synchronize
from pdekit.classical import poisson
from pdekit.classical.grf import gaussian_random_field
from pdekit.linalg import cg, dcdm, ichol0, multigrid
from pdekit.models import LearnedPreconditioner, load_model

__all__ = ["plot", "run", "summary_table"]

BC = (("dirichlet", "neumann"), "neumann", "neumann")
CHECKPOINTS = {dim: Path(__file__).resolve().parents[2] / "solvers" / "checkpoints" / name
               for dim, name in ((2, "dcdm-poisson2d.pt"), (3, "dcdm-poisson3d-64.pt"))}
_PROBLEM = re.compile(r"poisson(2|3)d-(\d+)$")
METHODS = ("pdekit-cg", "pdekit-pcg-ichol0", "pdekit-pcg-multigrid", "pyamg-rs-pcg", "pdekit-dcdm",
           "pdekit-fcg-dcdm")


def make_system(size: int, dim: int, fraction: float, seed: int, device, dtype=torch.float64):
    """One system of the sequence: operator with random obstacles, masked GRF source, solid mask."""
    shape = (size,) * dim
    rng = np.random.default_rng(seed)
    solid = (poisson.random_obstacles(shape, rng, fraction=fraction, radius=(0.05, 0.15), anchor_axis=0)
             if fraction > 0 else None)
    f = gaussian_random_field(shape, rng, alpha=2.0, tau=3.0)
    if solid is not None:
        f = np.where(solid, 0.0, f)
    A = poisson.operator(shape, bc=BC[:dim], solid=solid, dtype=dtype, device=device)
    return A, torch.as_tensor(f, dtype=dtype, device=device), solid


def _iterations_to(norms: np.ndarray, rtol: float) -> int | None:
    hits = np.nonzero(norms <= rtol * norms[0])[0]
    return int(hits[0]) if len(hits) else None


def _timed(device, fn):
    synchronize(device)
    started = time.perf_counter()
    out = fn()
    synchronize(device)
    return out, time.perf_counter() - started


def _heartbeat(echo, label: str, A, b: torch.Tensor, every: float = 60.0):
    """A solver callback that echoes the iteration, the elapsed time and the relative residual at
    most once per ``every`` seconds (one extra product with ``A`` each time): long learned solves
    (256^3 on a CPU) show how far they are."""
    started = time.perf_counter()
    last = started
    iteration = 0
    norm_b = float(torch.linalg.vector_norm(b))

    def callback(x: torch.Tensor) -> None:
        nonlocal last, iteration
        iteration += 1
        now = time.perf_counter()
        if now - last >= every:
            last = now
            residual = float(torch.linalg.vector_norm(b - A.matvec(x))) / norm_b
            echo(f"    {label}: iteration {iteration}, {now - started:.0f} s, residual {residual:.2e}")
    return callback


def _solvers(learned, rtol: float, maxiter: int, flexible: bool, depth: int, echo=None, label=""):
    """(method, set-up, solve) triples; set-up returns the state solve needs. The learned solves
    echo a heartbeat each minute (:func:`_heartbeat`) when ``echo`` is given."""
    def beat(method, A, b):
        return None if echo is None else _heartbeat(echo, f"{label}{method}", A, b)

    out = [
        ("pdekit-cg", lambda A: None, lambda A, b, _: cg(A, b, rtol=rtol, maxiter=maxiter)),
        ("pdekit-pcg-ichol0", ichol0, lambda A, b, M: cg(A, b, M=M, rtol=rtol, maxiter=maxiter)),
        ("pdekit-pcg-multigrid", multigrid, lambda A, b, M: cg(A, b, M=M, rtol=rtol, maxiter=maxiter)),
    ]
    if learned is not None:
        out.append(("pdekit-dcdm", lambda A: learned.bind(A),
                    lambda A, b, M: dcdm(A, b, M, rtol=rtol, depth=depth, maxiter=maxiter,
                                         callback=beat("pdekit-dcdm", A, b))))
        if flexible:
            out.append(("pdekit-fcg-dcdm", lambda A: learned.bind(A),
                        lambda A, b, M: cg(A, b, M=M, rtol=rtol, maxiter=maxiter,
                                           callback=beat("pdekit-fcg-dcdm", A, b))))
    return out


def _pyamg_record(A, b, rtol: float, maxiter: int):
    try:
        import pyamg
    except ImportError:  # an optional peer
        return None
    S = A.to_scipy().tocsr()
    b_np = b.double().cpu().numpy().reshape(-1)
    started = time.perf_counter()
    ml = pyamg.ruge_stuben_solver(S)
    setup = time.perf_counter() - started
    residuals: list[float] = []
    started = time.perf_counter()
    x = ml.solve(b_np, tol=rtol, accel="cg", residuals=residuals, maxiter=maxiter)
    seconds = time.perf_counter() - started
    relative = float(np.linalg.norm(b_np - S @ x) / np.linalg.norm(b_np))
    return setup, seconds, np.asarray(residuals), relative


def run(device: torch.device, *, echo=print, problems=None, instances: int | None = None,
        rtol: float = 1e-6, quick: bool = False, max_fraction: float = 0.3,
        checkpoint: str | Path | None = None, flexible: bool | None = None,
        maxiter: int = 3000, depth: int = 2, scales: tuple[int, ...] = (1,),
        methods: tuple[str, ...] | None = None, **_) -> BenchmarkReport:
    """Run the benchmark (see the module docstring); ``quick``: 16^3, two systems; ``depth``:
    DCDM's orthogonalisation depth; ``scales``: the learned preconditioner's grid scales;
    ``max_fraction``: the last system's solid fraction (the sequence steps from 0 to it);
    ``methods``: the names to run (default: all, flexible CG on a GPU only)."""
    device = torch.device(device)
    unknown = sorted(set(methods or ()) - set(METHODS))
    if unknown or (methods is not None and not methods):
        raise ValueError(f"bench dcdm: `methods` must name some of {', '.join(METHODS)}; got "
                         f"{', '.join(unknown) or 'none'}")
    if problems is None:
        problems = ["poisson3d-16"] if quick else (
            ["poisson3d-64", "poisson3d-128", "poisson3d-256"] if device.type == "cuda" else ["poisson3d-64"])
    instances = instances or (2 if quick else 5)
    if flexible is None:
        flexible = device.type == "cuda" if methods is None else "pdekit-fcg-dcdm" in methods
    wanted = set(METHODS if methods is None else methods)
    if not 0 <= max_fraction <= 0.9:
        raise ValueError(f"bench dcdm: `max_fraction` must lie in [0, 0.9], got {max_fraction}")
    if checkpoint is not None and not Path(checkpoint).is_file():
        raise ValueError(f"bench dcdm: `checkpoint` {str(checkpoint)!r} is not a file")
    networks: dict[Path, LearnedPreconditioner] = {}
    report = BenchmarkReport("dcdm", describe_device(device))
    for name in problems:
        match = _PROBLEM.match(name)
        if match is None:
            raise ValueError(f"bench dcdm: unknown problem {name!r}; use poisson3d-N or poisson2d-N")
        dim, size = int(match.group(1)), int(match.group(2))
        path = Path(checkpoint) if checkpoint is not None else CHECKPOINTS[dim]
        learned = None
        if path.is_file():
            if path not in networks:
                networks[path] = LearnedPreconditioner(load_model(path, expected="dcdm-net", device=device),
                                                       scales=scales)
            learned = networks[path]
            if learned.net.dim != dim:
                raise ValueError(f"bench dcdm: the checkpoint is a {learned.net.dim}D network; "
                                 f"problem {name!r}")
        else:
            echo(f"bench dcdm: no checkpoint at {path}; the learned methods are skipped")
        fractions = np.linspace(0.0, max_fraction, instances)
        for k, fraction in enumerate(fractions):
            A, b, solid = make_system(size, dim, float(fraction), seed=1000 + k, device=device)
            actual = 0.0 if solid is None else float(solid.mean())
            common = dict(system=k, solid_fraction=actual, n=A.n, device=str(device), rtol=rtol,
                          network=path.name if learned is not None else None, depth=depth,
                          scales=list(scales))
            label = f"{name} system {k}: "
            for method, setup_fn, solve_fn in _solvers(learned, rtol, maxiter, flexible, depth, echo, label):
                if method not in wanted:
                    continue
                state, setup = _timed(device, lambda: setup_fn(A))  # noqa: B023
                result, seconds = _timed(device, lambda: solve_fn(A, b, state))  # noqa: B023
                norms = result.residual_norms.double().numpy()
                true = float(torch.linalg.vector_norm(b - A.matvec(result.x)) / torch.linalg.vector_norm(b))
                _add(report, name, method, common, setup, seconds, norms, true, bool(result.converged))
                echo(f"  {name} system {k} (solid {actual:.0%}): {method} {result.iterations} iterations, "
                     f"{setup + seconds:.3g} s")
            peer = None
            if "pyamg-rs-pcg" in wanted and (device.type == "cpu" or size <= 128):
                peer = _pyamg_record(A, b, rtol, maxiter)
            if peer is not None:
                setup, seconds, norms, true = peer
                _add(report, name, "pyamg-rs-pcg", common, setup, seconds, norms, true, true <= rtol * 1.01)
    return report


def _add(report, problem, method, common, setup, seconds, norms, true_residual, converged):
    iterations = len(norms) - 1
    to_4 = _iterations_to(norms, 1e-4)
    report.add(problem, method, **common, iterations=iterations, iterations_1e4=to_4, setup_seconds=setup,
               seconds=seconds, total_seconds=setup + seconds,
               seconds_1e4=None if to_4 is None else setup + seconds * to_4 / max(iterations, 1),
               relative_residual=true_residual, converged=converged,
               residual_history=[float(v) for v in norms / norms[0]])


def summary_table(report: BenchmarkReport) -> str:
    rows = [{k: v for k, v in r.items() if k != "residual_history"} for r in report.records]
    columns = ["problem", "system", "solid_fraction", "method", "iterations_1e4", "iterations",
               "setup_seconds", "seconds", "total_seconds", "relative_residual"]
    return format_table(rows, columns)


def plot(report: BenchmarkReport, path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    label = _labeller(report.records)
    records = [{**r, "method": label(r)} for r in report.records]
    first = records[0]["problem"]
    systems = sorted({r["system"] for r in records if r["problem"] == first})
    median = systems[len(systems) // 2]
    methods = list(dict.fromkeys(r["method"] for r in records))  # one colour per method, all panels
    problems = list(dict.fromkeys(r["problem"] for r in records))  # one line style per problem
    color = {method: f"C{i % 10}" for i, method in enumerate(methods)}
    sizes = {problem: _grid_size(problem) for problem in problems}
    scaling = len(set(sizes.values())) > len({dim for dim, _ in sizes.values()})  # a dim with 2 sizes
    fig, axes = plt.subplots(1, 4 if scaling else 3, figsize=(21 if scaling else 16, 4.5))
    seen = set()
    for r in records:
        if r["problem"] != first or r["system"] != median or r["method"] in seen:
            continue
        seen.add(r["method"])
        history = np.asarray(r["residual_history"])
        steps = np.arange(len(history))
        axes[0].semilogy(steps, history, color=color[r["method"]], label=r["method"])
        per = r["seconds"] / max(r["iterations"], 1)
        axes[1].semilogy(r["setup_seconds"] + per * steps, history, color=color[r["method"]],
                         label=r["method"])
    axes[0].set(xlabel="iteration", ylabel="relative residual",
                title=f"{first}, system {median}: residual vs iteration")
    axes[1].set(xlabel="seconds (set-up included)", ylabel="relative residual", title="residual vs time")
    axes[1].set_xscale("log")
    _plot_fractions(axes[2], records, problems, methods, color)
    if scaling:
        _plot_scaling(axes[3], records, methods, sizes, color)
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    return save_figure(fig, path, title=f"pdekit bench dcdm on {report.device} ({report.date[:10]})")


def _plot_fractions(ax, records, problems, methods, color) -> None:
    """Iterations to 1e-4 against the solid fraction, a line per problem and method; where every
    problem holds a single system (one fraction each), grouped bars per problem instead."""
    fractions = {problem: sorted({r["solid_fraction"] for r in records if r["problem"] == problem})
                 for problem in problems}

    def iterations(rows):  # NaN where a method never reached 1e-4
        return [np.nan if r is None or r["iterations_1e4"] is None else r["iterations_1e4"] for r in rows]

    if all(len(f) == 1 for f in fractions.values()):
        width = 0.8 / len(methods)
        for m, method in enumerate(methods):
            rows = [next((r for r in records if r["problem"] == problem and r["method"] == method), None)
                    for problem in problems]
            counts = iterations(rows)
            bars = ax.bar(np.arange(len(problems)) + (m - (len(methods) - 1) / 2) * width, counts, width,
                          color=color[method], label=method)
            ax.bar_label(bars, ["" if np.isnan(c) else f"{c:.0f}" for c in counts], fontsize=7)
        ax.set_xticks(range(len(problems)),
                      [f"{problem}\n{100 * fractions[problem][0]:.0f}% solid" for problem in problems])
        ax.set(ylabel="iterations to 1e-4", yscale="log", title="iterations to 1e-4, one system each")
    else:
        for (p, problem), method in itertools.product(enumerate(problems), methods):
            rows = sorted((r for r in records if r["problem"] == problem and r["method"] == method),
                          key=lambda r: r["solid_fraction"])
            if rows:
                ax.plot([100 * r["solid_fraction"] for r in rows], iterations(rows),
                        ("o-", "s--", "^:")[p % 3], color=color[method], label=f"{problem} {method}")
        ax.set(xlabel="solid cells [%]", ylabel="iterations to 1e-4", yscale="log",
               title="iterations vs obstacle fraction")
    ax.legend(fontsize=6)


def _grid_size(problem: str) -> tuple[int, int]:
    """``(dimension, points per axis)`` of a ``poissonDd-N`` problem name."""
    match = _PROBLEM.match(problem)
    return int(match.group(1)), int(match.group(2))


def _labeller(records: list[dict]):
    """Method names for the plot: the learned methods' depth and scales are added where the
    report holds several (reports of several runs joined)."""
    learned = [r for r in records if "dcdm" in r["method"]]
    depths = {r.get("depth") for r in learned}
    scales = {tuple(r.get("scales") or (1,)) for r in learned}

    def label(r: dict) -> str:
        name = r["method"]
        if "dcdm" not in name:
            return name
        if len(depths) > 1:
            name += f" depth {r.get('depth')}"
        if len(scales) > 1:
            name += " scales " + "-".join(str(k) for k in (r.get("scales") or (1,)))
        return name

    return label


def _plot_scaling(ax, records, methods, sizes, color) -> None:
    """Iterations to 1e-4 against the grid size, per dimension holding several sizes: median
    over the systems, min-max as bars."""
    dims = sorted({dim for dim, _ in sizes.values()
                   if len({n for d, n in sizes.values() if d == dim}) > 1})
    ticks = set()
    for (k, dim), method in itertools.product(enumerate(dims), methods):
        points = []
        for problem, (d, size) in sorted(sizes.items(), key=lambda item: item[1]):
            counts = [r["iterations_1e4"] for r in records if r["problem"] == problem
                      and r["method"] == method and r["iterations_1e4"] is not None]
            if d == dim and counts:
                points.append((size, np.median(counts), min(counts), max(counts)))
        if not points:
            continue
        x, mid, low, high = (np.asarray(v, dtype=float) for v in zip(*points, strict=True))
        ticks.update(int(n) for n in x)
        ax.errorbar(x, mid, yerr=[mid - low, high - mid], fmt=("o-", "s--")[k % 2], capsize=3,
                    color=color[method], label=f"{method} {dim}D" if len(dims) > 1 else method)
    ax.set(xlabel="grid points per axis", ylabel="iterations to 1e-4 (median, min-max)",
           xscale="log", yscale="log", title="iterations vs grid size")
    ax.set_xticks(sorted(ticks), [str(n) for n in sorted(ticks)])
    ax.minorticks_off()
    ax.legend(fontsize=6)
