"""``pdekit bench ot``: entropic optimal transport, ours (Sinkhorn, Sinkhorn-Newton-Sparse)
against POT (``ot.sinkhorn(..., method='sinkhorn_log')``, and ``ot.emd`` for the exact cost),
in one process.

Problems (names parsed by :func:`make_problem`; costs normalised to maximum 1):

* ``points-N-epsE``: N uniform points in the unit square each side, squared Euclidean cost;
* ``assignment-N[-etaH]``: the random assignment problem of Tang et al. (2024): uniform costs,
  ``eps = 1 / H`` (default ``H = 1200``, the paper's setting);
* ``images[S]-l1`` / ``images[S]-l2``: two synthetic S x S images (default 28, the MNIST size)
  on their supports, Manhattan or squared Euclidean pixel distance, ``eta = 1200``;
* ``density1d-w1-N``, ``density1d-w2-N``, ``density2d-w2-S``: Gaussian-mixture densities
  discretised on grids (W1: ``|x - y|``, W2: ``|x - y|^2``), ``eta = 1200``.

Per problem, three kinds of records:

* ``convergence``: ours to a marginal violation of ``1e-10`` (L1, both marginals), with the
  history of the violation against iterations and seconds (the paper's figure);
  ``iteration_ratio`` = Sinkhorn iterations / SNS iterations;
* ``equal-error``: POT's ``sinkhorn_log`` to ``stopThr = 1e-9`` (its own criterion: L2 of
  one marginal), then ours to the L1 violation POT actually reached, so both stop at equal
  marginal error measured one way; ``ratio_to_pdekit`` = POT seconds / ours. POT is skipped
  where its projected time exceeds ``pot_budget`` seconds (projected from 10 timed
  iterations and our iteration count);
* ``exact``: ``ot.emd2``, the reference for ``error`` (relative cost error of each method).

On every device the per-iteration time of our Sinkhorn kernel is also compared with the
bandwidth floor (two reads of the ``n x m`` kernel per iteration at the measured copy
bandwidth): ``fraction_of_floor``.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import torch

from pdekit.bench.record import (
    BenchmarkReport,
    copy_bandwidth,
    describe_device,
    format_table,
    save_figure,
    synchronize,
)
from pdekit.classical.ot import (
    image_distribution,
    l1_cost,
    sinkhorn,
    sinkhorn_newton_sparse,
    squared_euclidean_cost,
)
from pdekit.classical.ot.costs import grid_cost
from pdekit.classical.ot.problems import (
    gaussian_mixture_density,
    random_assignment,
    random_point_clouds,
    synthetic_image,
)

__all__ = ["DEFAULT_PROBLEMS", "QUICK_PROBLEMS", "make_problem", "plot", "run", "summary_table"]

DEFAULT_PROBLEMS = [
    "assignment-500", "images-l2", "images-l1", "density1d-w1-1000", "density1d-w2-1000",
    "density2d-w2-32", "points-500-eps1e-2", "points-500-eps1e-3", "points-2000-eps1e-2",
    "points-2000-eps1e-3", "points-10000-eps1e-2",
]
QUICK_PROBLEMS = ["points-200-eps1e-2", "assignment-100-eta300", "images12-l2", "density1d-w2-150"]
PLOT_PROBLEMS = ["assignment-500", "images-l2", "images-l1", "points-2000-eps1e-3"]
SPARSITY_PROBLEM = "assignment-500"

# The paper's Table 1 (Tang et al. 2024; to machine accuracy, laptop CPU): iterations and seconds.
PAPER = {
    "assignment-500": {"sinkhorn": (56_199, 233.0), "sns": (29, 0.34)},
    "images-l2": {"sinkhorn": (2_041, 18.8), "sns": (53, 2.33)},
    "images-l1": {"sinkhorn": (5_748, 45.8), "sns": (777, 12.2)},
}
CONVERGENCE_TOL = 1e-10
POT_STOP = 1e-9
EXACT_MAX = 5000  # ot.emd beyond this many points per side: minutes and gigabytes
# SNS's Newton stage works on the dense plan (top-k over n^2 entries, an exp pass per line-search
# trial): at n = 10,000 on 2 CPU cores it ran over 15 minutes, so it is skipped there by default
SNS_MAX_POINTS = {"cpu": 5000, "cuda": 20_000}
PAPER_ETA = 1200.0


def _normalised(C: torch.Tensor) -> torch.Tensor:
    return C / C.max()


def make_problem(name: str, dtype=torch.float64) -> dict:
    """The named problem on the CPU: ``{"a", "b", "C", "eps", "sns": {...options}}``."""
    sns: dict = {}
    if match := re.fullmatch(r"points-(\d+)-eps([0-9.e-]+)", name):
        n, eps = int(match.group(1)), float(match.group(2))
        a, b, x, y = random_point_clouds(n, seed=0, dtype=dtype)
        C = _normalised(squared_euclidean_cost(x, y))
    elif match := re.fullmatch(r"assignment-(\d+)(?:-eta([0-9.]+))?", name):
        n = int(match.group(1))
        eps = 1.0 / float(match.group(2) or PAPER_ETA)
        a, b, C = random_assignment(n, seed=0, dtype=dtype)
    elif match := re.fullmatch(r"images(\d*)-(l1|l2)", name):
        size = int(match.group(1) or 28)
        a, x = image_distribution(synthetic_image(size, seed=0, dtype=dtype), support_only=True)
        b, y = image_distribution(synthetic_image(size, seed=1, dtype=dtype), support_only=True)
        C = _normalised(l1_cost(x, y) if match.group(2) == "l1" else squared_euclidean_cost(x, y))
        eps = 1.0 / PAPER_ETA
    elif match := re.fullmatch(r"density([12])d-(w1|w2)-(\d+)", name):
        dim, size = int(match.group(1)), int(match.group(3))
        shape = (size,) * dim
        a = gaussian_mixture_density(shape, seed=0, dtype=dtype)
        b = gaussian_mixture_density(shape, seed=1, dtype=dtype)
        metric = "euclidean" if match.group(2) == "w1" else "sqeuclidean"
        C = _normalised(grid_cost(shape, metric=metric, dtype=dtype))
        eps = 1.0 / PAPER_ETA
    else:
        raise ValueError(
            f"bench ot: unknown problem {name!r}; expected e.g. 'points-2000-eps1e-3', "
            "'assignment-500', 'images-l1', 'density1d-w2-1000', 'density2d-w2-32'"
        )
    return {"a": a, "b": b, "C": C, "eps": eps, "sns": sns}


def _l1_violation(P: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(P.sum(1) - a).sum() + np.abs(P.sum(0) - b).sum())


def _subsample(values, limit: int = 300) -> list[int]:
    """Indices of at most ``limit`` points of a history, denser at its start (log-spaced)."""
    count = len(values)
    if count <= limit:
        return list(range(count))
    idx = np.unique(np.geomspace(1, count, limit).astype(int) - 1)
    return sorted(set(idx.tolist()) | {count - 1})


def _history_fields(result) -> dict:
    keep = _subsample(result.history_iterations)
    return {
        "history_iterations": [int(result.history_iterations[i]) for i in keep],
        "history_marginal_error": [float(result.marginal_error_history[i]) for i in keep],
        "history_seconds": [float(result.history_seconds[i]) for i in keep],
    }


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _ours(method: str, prob: dict, device, dtype, tol: float, maxiter: int):
    a, b, C = (prob[k].to(device, dtype) for k in ("a", "b", "C"))
    synchronize(device)
    if method == "sinkhorn":
        res, seconds = _timed(lambda: sinkhorn(a, b, C, prob["eps"], tol=tol, maxiter=maxiter,
                                               return_plan=False))
    else:
        res, seconds = _timed(lambda: sinkhorn_newton_sparse(
            a, b, C, prob["eps"], tol=tol, return_plan=False, **prob["sns"]))
    synchronize(device)
    return res, seconds


def _result_fields(res, seconds: float, exact: float | None) -> dict:
    cost = float(res.cost)
    return {
        "iterations": res.iterations, "seconds": seconds, "marginal_error": float(res.marginal_error),
        "cost": cost, "error": None if exact is None else abs(cost - exact) / exact,
        "status": res.status.name,
    }


def _kernel_seconds_per_iteration(prob: dict, device, dtype, iterations: int = 100) -> float:
    """Seconds per Sinkhorn iteration once started: the slope of the check times of a run of
    ``30 + iterations`` iterations (no tolerance) between iteration 31 and the end."""
    a, b, C = (prob[k].to(device, dtype) for k in ("a", "b", "C"))
    res = sinkhorn(a, b, C, prob["eps"], tol=0.0, maxiter=30 + iterations, check_every=10,
                   return_plan=False)
    its, secs = res.history_iterations, res.history_seconds
    first = int(torch.searchsorted(its, torch.tensor(31)))
    return float((secs[-1] - secs[first]) / (its[-1] - its[first]))

def _pot_seconds_per_iteration(ot, a, b, C, eps) -> float:
    t0 = time.perf_counter()
    ot.sinkhorn(a, b, C, eps, method="sinkhorn_log", numItermax=10, stopThr=0.0, warn=False)
    return (time.perf_counter() - t0) / 10


def _bench_problem(report, name, device, dtype, *, pot_budget, bandwidth, maxiter, echo,
                   sns_max_points, tol):
    prob = make_problem(name)
    a_np, b_np, C_np = (prob[k].numpy() for k in ("a", "b", "C"))
    n, m = C_np.shape
    eps = prob["eps"]
    common = {"device": str(device), "dtype": str(dtype).replace("torch.", ""), "n": n, "m": m,
              "eps": eps}
    try:
        import ot
    except ImportError:  # POT is a dev extra: without it, ours only
        ot = None

    exact = None
    if ot is not None and max(n, m) <= EXACT_MAX:
        exact, seconds = _timed(lambda: float(ot.emd2(a_np, b_np, C_np, numItermax=10_000_000)))
        report.add(name, "pot-emd", kind="exact", seconds=seconds, cost=exact, **common)
    echo(f"[{name}] n={n} m={m} eps={eps:.3g}; exact cost {exact}")

    # convergence to 1e-10: iterations, histories (the paper's figure)
    rows = {}
    methods = ["sinkhorn", "sns"]
    if max(n, m) > sns_max_points:
        methods = ["sinkhorn"]
        report.add(name, "pdekit-sns", kind="convergence", skipped=True, **common,
                   reason=f"max(n, m) > sns_max_points = {sns_max_points}")
        echo(f"[{name}] pdekit-sns skipped: max(n, m) > {sns_max_points}")
    for method in methods:
        res, seconds = _ours(method, prob, device, dtype, tol, maxiter)
        extra = {}
        if method == "sns":
            extra = {"newton_iterations": res.newton_iterations, "cg_iterations": res.cg_iterations,
                     "warmup": prob["sns"].get("warmup", 20),
                     "keep_per_row": prob["sns"].get("keep_per_row", 15.0)}
        if name in PAPER:
            its, secs = PAPER[name][method]
            extra.update(paper_iterations=its, paper_seconds=secs)
        rows[method] = report.add(name, f"pdekit-{method}", kind="convergence", tol=tol,
                                  **common, **_result_fields(res, seconds, exact), **extra,
                                  **_history_fields(res))
        echo(f"[{name}] pdekit-{method}: {res.iterations} iterations, {seconds:.3g} s, "
             f"{res.status.name}")
    if "sns" in rows:
        rows["sns"]["iteration_ratio"] = rows["sinkhorn"]["iterations"] / max(rows["sns"]["iterations"], 1)
    if name in PAPER and "sns" in rows:
        p = PAPER[name]
        rows["sns"]["paper_iteration_ratio"] = p["sinkhorn"][0] / p["sns"][0]

    per_iteration = _kernel_seconds_per_iteration(prob, device, dtype)
    itemsize = torch.empty(0, dtype=dtype).element_size()
    floor = 2 * n * m * itemsize / (bandwidth * 1e9)
    report.add(name, "pdekit-sinkhorn-iteration", kind="kernel", seconds=per_iteration,
               floor_seconds=floor, fraction_of_floor=floor / per_iteration,
               gbytes_per_second=2 * n * m * itemsize / per_iteration / 1e9, **common)

    if ot is None:
        return
    projected = _pot_seconds_per_iteration(ot, a_np, b_np, C_np, eps) * rows["sinkhorn"]["iterations"]
    if projected > pot_budget:
        echo(f"[{name}] POT sinkhorn_log skipped: projected {projected:.0f} s > budget {pot_budget:.0f} s")
        report.add(name, "pot-sinkhorn-log", kind="equal-error", skipped=True,
                   projected_seconds=projected, **common)
        return
    (P, log), seconds = _timed(lambda: ot.sinkhorn(
        a_np, b_np, C_np, eps, method="sinkhorn_log", stopThr=POT_STOP, numItermax=1_000_000,
        log=True, warn=False))
    violation = _l1_violation(P, a_np, b_np)
    cost = float((P * C_np).sum())
    pot = report.add(name, "pot-sinkhorn-log", kind="equal-error", device="cpu", dtype="float64",
                     n=n, m=m, eps=eps, iterations=int(log["niter"]), seconds=seconds,
                     marginal_error=violation, cost=cost,
                     error=None if exact is None else abs(cost - exact) / exact,
                     history_iterations=[10 * i for i in range(1, len(log["err"]) + 1)],
                     history_pot_error=[float(e) for e in log["err"]])
    echo(f"[{name}] pot-sinkhorn-log: {pot['iterations']} iterations, {seconds:.3g} s, "
         f"L1 violation {violation:.2e}")
    for method in methods:
        res, secs = _ours(method, prob, device, dtype, violation, maxiter)
        row = report.add(name, f"pdekit-{method}", kind="equal-error", tol=violation, **common,
                         **_result_fields(res, secs, exact))
        pot[f"ratio_to_pdekit_{method}"] = seconds / secs
        row["pot_seconds"] = seconds
        if method == "sinkhorn":
            pot["ratio_to_pdekit"] = seconds / secs
            row["plan_cost_vs_pot"] = abs(row["cost"] - cost) / cost
        echo(f"[{name}] pdekit-{method} at POT's violation: {res.iterations} iterations, {secs:.3g} s "
             f"({seconds / secs:.1f}x faster than POT)")


def _sparsity_sweep(report, device, dtype, echo, values=(2.0, 5.0, 15.0)):
    """SNS on :data:`SPARSITY_PROBLEM` keeping exactly ``k n`` plan entries (the paper's fixed
    sparsity, ``max_dropped=None``) for each ``k`` in ``values``, and with the default adaptive
    sparsity."""
    prob = make_problem(SPARSITY_PROBLEM)
    a, b, C = (prob[k].to(device, dtype) for k in ("a", "b", "C"))
    settings = [(keep, None) for keep in values] + [(15.0, 1e-6)]
    for keep, dropped in settings:
        res, seconds = _timed(lambda k=keep, d=dropped: sinkhorn_newton_sparse(
            a, b, C, prob["eps"], tol=CONVERGENCE_TOL, keep_per_row=k, max_dropped=d,
            return_plan=False))
        report.add(SPARSITY_PROBLEM, "pdekit-sns", kind="sparsity", keep_per_row=keep,
                   max_dropped=dropped, iterations=res.iterations,
                   newton_iterations=res.newton_iterations, cg_iterations=res.cg_iterations,
                   seconds=seconds, marginal_error=float(res.marginal_error),
                   status=res.status.name)
        echo(f"[{SPARSITY_PROBLEM}] SNS keep_per_row={keep:g}, max_dropped={dropped}: "
             f"{res.iterations} iterations ({res.newton_iterations} Newton, "
             f"{res.cg_iterations} CG), {seconds:.3g} s, {res.status.name}")


def run(
    device: str | torch.device = "cpu",
    *,
    dtype: torch.dtype | None = None,
    problems: list[str] | None = None,
    quick: bool = False,
    pot_budget: float | None = None,
    maxiter: int = 200_000,
    sparsity_sweep: bool | None = None,
    sns_max_points: int | None = None,
    rtol: float | None = None,
    echo=print,
) -> BenchmarkReport:
    """Run the optimal-transport benchmark on ``device`` and return its report.

    Parameters
    ----------
    device : str
        Where our solvers run (POT runs on the CPU in float64).
    dtype : torch.dtype, optional
        Default float64 on the CPU (as POT), float32 on accelerators.
    problems : list of str, optional
        Problem names (see :func:`make_problem`); default :data:`DEFAULT_PROBLEMS`
        (``quick``: :data:`QUICK_PROBLEMS`, tiny).
    pot_budget : float, optional
        Skip POT's ``sinkhorn_log`` on a problem where its projected time exceeds this many
        seconds (default 600; 20 with ``quick``).
    sparsity_sweep : bool, optional
        Also run SNS on ``assignment-500`` keeping exactly 2, 5 and 15 entries per row, and
        with the default adaptive sparsity (default: unless ``quick``).
    sns_max_points : int, optional
        Skip SNS on problems with more points per side (default :data:`SNS_MAX_POINTS`).
    rtol : float, optional
        The marginal violation of the ``convergence`` runs (``pdekit bench ot --rtol``;
        default 1e-10). The ``equal-error`` runs stop at POT's violation.
    """
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("bench ot: `device` is cuda but no CUDA device is available")
    dtype = dtype or (torch.float64 if device.type == "cpu" else torch.float32)
    if problems is None:
        problems = QUICK_PROBLEMS if quick else DEFAULT_PROBLEMS
    for name in problems:
        make_problem(name)  # validate names before any work
    if pot_budget is None:
        pot_budget = 20.0 if quick else 600.0
    if sns_max_points is None:
        sns_max_points = SNS_MAX_POINTS.get(device.type, SNS_MAX_POINTS["cpu"])
    report = BenchmarkReport("ot", describe_device(device))
    bandwidth = copy_bandwidth(device, nbytes=(1 << 24) if quick else (1 << 28))
    report.add("copy", "torch-copy", kind="bandwidth", device=str(device),
               gbytes_per_second=bandwidth)
    echo(f"device: {report.device}; measured copy bandwidth {bandwidth:.1f} GB/s")
    for name in problems:
        _bench_problem(report, name, device, dtype, pot_budget=pot_budget, bandwidth=bandwidth,
                       maxiter=maxiter, echo=echo, sns_max_points=sns_max_points,
                       tol=CONVERGENCE_TOL if rtol is None else rtol)
    if sparsity_sweep if sparsity_sweep is not None else not quick:
        _sparsity_sweep(report, device, dtype, echo)
    return report


def summary_table(report: BenchmarkReport) -> str:
    """The report as a table (``ratio_to_pdekit`` > 1: ours is faster than POT)."""
    rows = [r for r in report.records if r["kind"] not in ("bandwidth",)]
    return format_table(
        rows,
        ["problem", "kind", "method", "keep_per_row", "iterations", "seconds", "marginal_error",
         "error", "iteration_ratio", "paper_iteration_ratio", "ratio_to_pdekit",
         "fraction_of_floor", "status"],
    )


def plot(report: BenchmarkReport, path: str | Path) -> Path:
    """The paper's figure: marginal violation against iterations (top) and seconds (bottom),
    log scale, for Sinkhorn and SNS (ours) and POT's ``sinkhorn_log`` (its own error: the
    L2 violation of one marginal, every 10 iterations; seconds interpolated over its run)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conv = [r for r in report.records if r["kind"] == "convergence" and not r.get("skipped")]
    names = [p for p in PLOT_PROBLEMS if any(r["problem"] == p for r in conv)]
    if not names:
        names = list(dict.fromkeys(r["problem"] for r in conv))[:4]
    cols = max(len(names), 1)
    fig, axes = plt.subplots(2, cols, figsize=(4.2 * cols, 7), squeeze=False)
    style = {"pdekit-sinkhorn": ("C0", "-", "Sinkhorn (pdekit)"),
             "pdekit-sns": ("C3", "-", "SNS (pdekit)")}
    for j, name in enumerate(names):
        top, bottom = axes[0][j], axes[1][j]
        for r in conv:
            if r["problem"] != name or r["method"] not in style:
                continue
            color, line, label = style[r["method"]]
            err = np.maximum(np.asarray(r["history_marginal_error"]), 1e-17)
            top.semilogy(r["history_iterations"], err, line, color=color, label=label)
            bottom.semilogy(r["history_seconds"], err, line, color=color, label=label)
        for r in report.records:
            if (r["problem"] == name and r["method"] == "pot-sinkhorn-log"
                    and not r.get("skipped") and r.get("history_pot_error")):
                its = np.asarray(r["history_iterations"])
                err = np.maximum(np.asarray(r["history_pot_error"]), 1e-17)
                label = "POT sinkhorn_log (its L2 error, one marginal)"
                top.semilogy(its, err, "--", color="0.4", label=label)
                bottom.semilogy(its / its[-1] * r["seconds"], err, "--", color="0.4", label=label)
        top.set_title(name, fontsize=10)
        top.set_xlabel("iterations")
        bottom.set_xlabel("seconds")
        bottom.set_xscale("log")
        for ax in (top, bottom):
            ax.set_ylabel("marginal violation (L1)")
            ax.grid(True, which="major", alpha=0.3)
        top.legend(fontsize=7)
    return save_figure(fig, path, title=f"pdekit bench ot: {report.device} ({report.date[:10]})", dpi=110)

