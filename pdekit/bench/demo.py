"""``pdekit demo``: the whole toolkit end to end on a laptop CPU, from one seed.

Five steps, each printing one line of result, then a report (``report.md`` with tables and
PNG plots, and ``results.json`` with every number) in the output folder:

1. **Datasets** with the classical solvers (:func:`pdekit.data.generate`, the one dataset
   writer): Darcy flow (thresholded Gaussian-random-field coefficient, solved on a fine grid
   and subsampled, as ``datasets/darcy.toml``) and a sequence of 3D pressure-Poisson systems
   with random solid obstacles (as ``datasets/poisson3d-obstacles.toml``).
2. **A neural operator**: a small Latent Spectral Model (Wu et al., ICML 2023) trained by the
   one :class:`~pdekit.train.Trainer` for a fixed number of epochs on the Darcy data and
   evaluated against the classical solver: relative L2 error and time per sample.
3. **A learned preconditioner**: the Poisson sequence solved with CG, multigrid-PCG and the
   shipped DCDM network (Kaneda et al., ICML 2023) in :func:`pdekit.linalg.dcdm`.
4. **Optimal transport**: Sinkhorn against Sinkhorn-Newton-Sparse (Tang et al., ICLR 2024).
5. **SOR tuned by a bandit**: a contextual bandit choosing SOR's ``omega`` online against
   fixed ``omega`` (Khodak et al., ICLR 2024) on a short sequence of shifted Laplacians.

Everything is seeded: the same seed gives the same datasets, model and iteration counts
(wall times differ between runs). ``quick=True`` shrinks every step (under a minute on a CPU).
"""

from __future__ import annotations

import datetime as _dt
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from pdekit._version import __version__
from pdekit.bench.record import (
    busy_cores_elsewhere,
    contention_warning,
    describe_device,
    save_figure,
    synchronize,
)
from pdekit.classical import poisson
from pdekit.classical.elliptic import solve_elliptic
from pdekit.classical.ot import sinkhorn, sinkhorn_newton_sparse
from pdekit.classical.ot.problems import random_assignment
from pdekit.classical.sor_tuning import (
    PooledChebCB,
    ShiftedLaplacianSequence,
    best_fixed_omega,
    fixed_omega_costs,
    instance_optimal_costs,
    play,
    sor_cost_table,
)
from pdekit.data import generate, open_dataset
from pdekit.data.problems import PROBLEMS
from pdekit.data.recipe import recipe_from_dict
from pdekit.linalg import cg, dcdm, multigrid
from pdekit.linalg._threads import serial_on_cpu
from pdekit.models import LatentSpectralModel, LearnedPreconditioner, load_model
from pdekit.train import Trainer, evaluate
from pdekit.train.evaluate import plot_predictions

__all__ = ["SIZES", "DemoSizes", "run_demo"]

CHECKPOINT = Path(__file__).resolve().parents[2] / "solvers" / "checkpoints" / "dcdm-poisson3d-64.pt"
POISSON_BC = [["dirichlet", "neumann"], "neumann", "neumann"]


@dataclass(frozen=True)
class DemoSizes:
    """How big each step of the demo is."""

    darcy_size: int          # Darcy grid the operator learns on
    darcy_fine_size: int     # grid the classical solver runs on (subsampled to darcy_size)
    darcy_train: int
    darcy_test: int
    lsm_width: int
    lsm_patch: int           # the grid is padded to a multiple of 16 * lsm_patch
    epochs: int
    poisson_size: int        # the 3D Poisson sequence: poisson_size^3 cells
    poisson_systems: int
    solid_fraction: float
    poisson_rtol: float
    transport_points: int    # random assignment problem, n x n
    transport_eta: float     # 1 / eps
    sor_instances: int


SIZES = {
    "full": DemoSizes(darcy_size=43, darcy_fine_size=169, darcy_train=300, darcy_test=50,
                      lsm_width=16, lsm_patch=3, epochs=12, poisson_size=24, poisson_systems=4,
                      solid_fraction=0.1, poisson_rtol=1e-6, transport_points=500,
                      transport_eta=1200.0, sor_instances=100),
    "quick": DemoSizes(darcy_size=29, darcy_fine_size=85, darcy_train=40, darcy_test=8,
                       lsm_width=8, lsm_patch=2, epochs=4, poisson_size=16, poisson_systems=2,
                       solid_fraction=0.1, poisson_rtol=1e-6, transport_points=100,
                       transport_eta=300.0, sor_instances=20),
}


@dataclass
class _Step:
    """One step's outcome: the line printed, the report section, the numbers."""

    title: str
    line: str
    body: str
    numbers: dict


def run_demo(out: str | Path = "runs/demo", *, quick: bool = False, device: str = "cpu", seed: int = 0,
             workers: int = 1, progress: bool = True, echo: Callable[[str], None] = print) -> Path:
    """Run the demo and write its report; return the path of ``report.md``.

    Parameters
    ----------
    out : path
        Folder for the report, its plots, the datasets (``out/data``) and the trained model.
    quick : bool
        Smaller everything (a smoke run of well under a minute on a CPU).
    device : str
        ``"cpu"`` or ``"cuda"``: where the model trains and the solvers run.
    seed : int
        Seeds the datasets, the model's initialisation and the bandit.
    workers : int
        Processes generating the datasets.
    progress : bool
        Show progress bars.
    echo : callable
        Receives each line of result.
    """
    device = _check_device(device)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"demo: `seed` must be a non-negative integer, got {seed!r}")
    sizes = SIZES["quick" if quick else "full"]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    echo(f"pdekit {__version__} demo ({'quick' if quick else 'full'}, seed {seed}) on "
         f"{describe_device(device)}; report in {out}")
    warning = contention_warning(busy_cores_elsewhere()) if device.type == "cpu" else None
    if warning:
        echo(f"demo: {warning}")
    context = {"out": out, "sizes": sizes, "device": device, "seed": seed, "workers": workers,
               "progress": progress}
    steps = []
    for number, step in enumerate((_datasets, _neural_operator, _learned_preconditioner,
                                   _optimal_transport, _bandit_sor), start=1):
        result = step(context)
        echo(f"[{number}/5] {result.line}")
        steps.append(result)
    seconds = time.perf_counter() - started
    report = _write_report(out, steps, sizes, device, seed, quick, seconds)
    echo(f"done in {seconds:.0f} s: {report}")
    return report


def _check_device(device: str) -> torch.device:
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"demo: `device` must be 'cpu' or 'cuda', got {device!r}") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("demo: `device` is 'cuda' but PyTorch sees no CUDA device; use --device cpu")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"demo: `device` must be 'cpu' or 'cuda', got {str(device)!r}")
    return device


# -- 1. datasets ------------------------------------------------------------------------------
def _darcy_recipe(sizes: DemoSizes, seed: int):
    return recipe_from_dict({
        "name": f"demo-darcy-{sizes.darcy_size}", "pde": "darcy", "seed": seed,
        "description": f"Darcy flow {sizes.darcy_size}^2 (solved on {sizes.darcy_fine_size}^2)",
        "samples_per_shard": 100,
        "splits": {"train": sizes.darcy_train, "test": sizes.darcy_test},
        "parameters": {"size": sizes.darcy_size, "fine_size": sizes.darcy_fine_size},
        "solver": {"rtol": 1e-8, "method": "multigrid"},
    }, where="demo Darcy recipe")


def _poisson_recipe(sizes: DemoSizes, seed: int):
    n = sizes.poisson_size
    return recipe_from_dict({
        "name": f"demo-poisson3d-{n}", "pde": "poisson", "seed": seed,
        "description": f"3D Poisson {n}^3 with random obstacles, fluid-pressure boundaries",
        "samples_per_shard": 25,
        "splits": {"test": sizes.poisson_systems},
        "parameters": {"shape": [n, n, n], "bc": POISSON_BC,
                       "obstacle_fraction": sizes.solid_fraction, "obstacle_radius": [0.05, 0.15]},
        "solver": {"rtol": 1e-8, "method": "multigrid"},
    }, where="demo Poisson recipe")


def _datasets(ctx: dict) -> _Step:
    sizes, out = ctx["sizes"], ctx["out"]
    rows = []
    for key, recipe in (("darcy", _darcy_recipe(sizes, ctx["seed"])),
                        ("poisson", _poisson_recipe(sizes, ctx["seed"]))):
        path = out / "data" / f"{recipe.name}-seed{ctx['seed']}"
        t0 = time.perf_counter()
        manifest = generate(recipe, path, workers=ctx["workers"], progress=ctx["progress"])
        seconds = time.perf_counter() - t0
        ctx[f"{key}_path"] = path
        ctx[f"{key}_recipe"] = recipe
        samples = sum(manifest["splits"].values())
        rows.append({"dataset": recipe.name, "samples": samples,
                     "splits": ", ".join(f"{k} {v}" for k, v in manifest["splits"].items()),
                     "seconds": seconds, "folder": str(path)})
    line = (f"datasets: {rows[0]['samples']} Darcy samples ({sizes.darcy_size}^2, solved on "
            f"{sizes.darcy_fine_size}^2) and {rows[1]['samples']} Poisson systems "
            f"({sizes.poisson_size}^3, {sizes.solid_fraction:.0%} solid) in "
            f"{rows[0]['seconds'] + rows[1]['seconds']:.1f} s")
    body = ("Generated with the classical solvers (multigrid-preconditioned CG to 1e-8) into "
            "sharded HDF5 (`pdekit info FOLDER` summarises one).\n\n"
            + _markdown_table(rows, ["dataset", "splits", "seconds", "folder"]))
    return _Step("Datasets", line, body, {"datasets": rows})


# -- 2. a neural operator ---------------------------------------------------------------------
def _neural_operator(ctx: dict) -> _Step:
    sizes, out, device = ctx["sizes"], ctx["out"], ctx["device"]
    train = open_dataset(ctx["darcy_path"], "train")
    test = open_dataset(ctx["darcy_path"], "test")
    torch.manual_seed(ctx["seed"])
    model = LatentSpectralModel(in_channels=1, out_channels=1, width=sizes.lsm_width,
                                num_basis=12, num_tokens=4, patch_size=sizes.lsm_patch, heads=4)
    parameters = sum(p.numel() for p in model.parameters())
    trainer = Trainer(model, train, test, epochs=sizes.epochs, batch_size=20, lr=2e-3,
                      scheduler="cosine", eval_every=max(1, sizes.epochs // 5), seed=ctx["seed"],
                      inputs=["a"], outputs=["u"], out=out / "lsm-darcy", device=str(device),
                      progress=ctx["progress"])
    t0 = time.perf_counter()
    history = trainer.fit()
    train_seconds = time.perf_counter() - t0
    trained = load_model(out / "lsm-darcy" / "best.pt", device=device)
    result = evaluate(trained, test, inputs=["a"], outputs=["u"], device=device)
    rel = result["metrics"]["relative_l2"]
    baseline = _mean_field_error(train, test)
    timing = _operator_timing(trained, test, ctx)
    plot_predictions(trained, test, out / "darcy-predictions.png", inputs=["a"], outputs=["u"],
                     samples=(0, 1), device=device)
    _plot_training(history, out / "darcy-training.png")
    numbers = {"model": "LatentSpectralModel", "parameters": parameters, "epochs": sizes.epochs,
               "train_samples": len(train), "test_samples": len(test),
               "train_seconds": train_seconds, "relative_l2": rel,
               "relative_l2_std": result["metrics"]["relative_l2_std"],
               "mean_field_relative_l2": baseline, **timing}
    line = (f"neural operator: LSM ({parameters:,} parameters, {sizes.epochs} epochs, "
            f"{train_seconds:.0f} s) test relative L2 {rel:.3f} (the mean field: {baseline:.3f}); "
            f"{timing['model_ms_batched']:.1f} ms per sample batched, {timing['model_ms_single']:.1f} ms "
            f"alone, against {timing['classical_ms']:.1f} ms for the classical solve "
            f"({timing['speedup_batched']:.1f}x / {timing['speedup_single']:.1f}x)")
    rows = [
        {"method": "classical (multigrid-PCG on the fine grid)", "ms_per_sample": timing["classical_ms"],
         "relative_l2": 0.0},
        {"method": "the mean training field (no model)", "ms_per_sample": "", "relative_l2": baseline},
        {"method": "LSM, batch 1", "ms_per_sample": timing["model_ms_single"], "relative_l2": rel},
        {"method": f"LSM, batch {timing['batch']}", "ms_per_sample": timing["model_ms_batched"],
         "relative_l2": rel},
    ]
    body = (f"A Latent Spectral Model (width {sizes.lsm_width}, patch {sizes.lsm_patch}, "
            f"{parameters:,} parameters) trained "
            f"by the Trainer for {sizes.epochs} epochs ({train_seconds:.0f} s) on {len(train)} "
            f"Darcy samples; test relative L2 error {rel:.4f} +- "
            f"{result['metrics']['relative_l2_std']:.4f} over {len(test)} unseen samples. The "
            "paper's 0.0065 is for 85^2, width 64, 1000 samples and 501 epochs "
            "(`solvers/lsm-darcy.toml`). The classical time is one Darcy solve at the dataset's "
            "accuracy on the fine grid it is computed on.\n\n"
            + _markdown_table(rows, ["method", "ms_per_sample", "relative_l2"])
            + "\n\n![Darcy predictions](darcy-predictions.png)\n\n![training](darcy-training.png)")
    return _Step("Neural operator (Darcy)", line, body, numbers)


def _mean_field_error(train, test) -> float:
    """Test relative L2 error of predicting the mean training solution everywhere: what a model
    that learned nothing about the coefficient scores."""
    mean = torch.stack([train[i]["u"] for i in range(len(train))]).double().mean(0)
    errors = [float(torch.linalg.vector_norm(mean - test[i]["u"].double())
                    / torch.linalg.vector_norm(test[i]["u"].double())) for i in range(len(test))]
    return float(np.mean(errors))


def _operator_timing(model, test, ctx: dict) -> dict:
    """Milliseconds per sample: the classical solve against the model at batch 1 and batched."""
    sizes, device = ctx["sizes"], ctx["device"]
    problem = PROBLEMS["darcy"]
    recipe = ctx["darcy_recipe"]
    rng = np.random.default_rng(ctx["seed"] + 1000)
    classical = []
    for _ in range(4):  # the first is a warm-up
        system = problem.system(recipe.parameters, rng)
        t0 = time.perf_counter()
        solve_elliptic(system.A.to(device), system.f.to(device), rtol=recipe.solver.rtol,
                       method=recipe.solver.method)
        synchronize(device)
        classical.append(time.perf_counter() - t0)
    a = torch.stack([test[i]["a"] for i in range(len(test))])[:, None].float().to(device)
    model.eval()

    def per_sample(x: torch.Tensor) -> float:
        with torch.no_grad():
            model(x)  # warm-up
            synchronize(device)
            t0 = time.perf_counter()
            for _ in range(3):
                model(x)
            synchronize(device)
        return (time.perf_counter() - t0) / 3 / len(x)

    batch = min(len(a), 32)
    single, batched = per_sample(a[:1]), per_sample(a[:batch])
    classical_s = float(np.median(classical[1:]))
    return {"classical_ms": 1e3 * classical_s, "model_ms_single": 1e3 * single,
            "model_ms_batched": 1e3 * batched, "batch": batch,
            "speedup_single": classical_s / single, "speedup_batched": classical_s / batched,
            "darcy_fine_size": sizes.darcy_fine_size}


def _plot_training(history: list[dict], path: Path) -> Path:
    fig, ax = _subplots(figsize=(5, 3.5))
    ax.semilogy([r["epoch"] for r in history], [r["train_loss"] for r in history], "o-", label="train loss")
    tested = [r for r in history if "test_relative_l2" in r]
    ax.semilogy([r["epoch"] for r in tested], [r["test_relative_l2"] for r in tested], "s-",
                label="test relative L2")
    ax.set_xlabel("epoch")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    return save_figure(fig, path, "LSM on Darcy: training")


# -- 3. a learned preconditioner --------------------------------------------------------------
def _learned_preconditioner(ctx: dict) -> _Step:
    sizes, device = ctx["sizes"], ctx["device"]
    systems = open_dataset(ctx["poisson_path"], "test")
    shape = (sizes.poisson_size,) * 3
    learned = None
    if CHECKPOINT.is_file():
        learned = LearnedPreconditioner(load_model(CHECKPOINT, expected="dcdm-net", device=device))
    methods = {"CG": lambda A, b: cg(A, b, rtol=sizes.poisson_rtol, maxiter=5000),
               "multigrid-PCG": lambda A, b: cg(A, b, rtol=sizes.poisson_rtol, maxiter=5000,
                                                M=multigrid(A))}
    if learned is not None:
        methods["DCDM (learned)"] = lambda A, b: dcdm(A, b, learned, rtol=sizes.poisson_rtol,
                                                      maxiter=2000, depth=20)
    runs: dict[str, list[dict]] = {name: [] for name in methods}
    histories: dict[str, np.ndarray] = {}
    for k in range(len(systems)):
        item = systems[k]
        solid = item["solid"].bool()
        A = poisson.operator(shape, bc=POISSON_BC, solid=solid.numpy(), dtype=torch.float64,
                             device=device)
        b = item["f"].to(device, torch.float64)
        reference = item["u"].to(device, torch.float64)
        for name, solve in methods.items():
            synchronize(device)
            t0 = time.perf_counter()
            res = solve(A, b)
            synchronize(device)
            seconds = time.perf_counter() - t0  # set-up (multigrid hierarchy) included
            error = float(torch.linalg.vector_norm(res.x - reference) / torch.linalg.vector_norm(reference))
            runs[name].append({"system": k, "solid_fraction": float(solid.float().mean()),
                               "iterations": res.iterations, "seconds": seconds,
                               "converged": bool(res.status.ok), "error_vs_dataset": error})
            if k == 0:
                norms = np.asarray(res.residual_norms, dtype=np.float64)
                histories[name] = norms / norms[0]
    rows = [{"method": name, "iterations": float(np.mean([r["iterations"] for r in rs])),
             "seconds": float(np.mean([r["seconds"] for r in rs])),
             "converged": f"{sum(r['converged'] for r in rs)}/{len(rs)}",
             "error_vs_dataset": float(np.max([r["error_vs_dataset"] for r in rs]))}
            for name, rs in runs.items()]
    _plot_convergence(histories, sizes.poisson_rtol, ctx["out"] / "poisson-convergence.png")
    by_name = {r["method"]: r for r in rows}
    if learned is not None:
        line = (f"learned preconditioner: {len(systems)} unseen {sizes.poisson_size}^3 systems to "
                f"{sizes.poisson_rtol:g}: DCDM {by_name['DCDM (learned)']['iterations']:.0f} iterations, "
                f"CG {by_name['CG']['iterations']:.0f}, multigrid-PCG "
                f"{by_name['multigrid-PCG']['iterations']:.0f} (mean)")
    else:
        line = (f"learned preconditioner: shipped checkpoint {CHECKPOINT.name} not found (install from "
                f"the repository to get it); CG {by_name['CG']['iterations']:.0f} and multigrid-PCG "
                f"{by_name['multigrid-PCG']['iterations']:.0f} iterations (mean)")
    body = (f"{len(systems)} pressure-Poisson systems ({sizes.poisson_size}^3, random obstacles, "
            f"about {sizes.solid_fraction:.0%} solid, none seen in training) solved to "
            f"relative residual {sizes.poisson_rtol:g} in float64. DCDM is the shipped network "
            f"`solvers/checkpoints/{CHECKPOINT.name}` in `pdekit.linalg.dcdm` (depth 20, the "
            "recommended setting: docs/dcdm.md); seconds "
            "include set-up (the multigrid hierarchy). `error_vs_dataset` is the largest relative "
            "difference from the dataset's classical solution.\n\n"
            + _markdown_table(rows, ["method", "iterations", "seconds", "converged", "error_vs_dataset"])
            + "\n\n![convergence](poisson-convergence.png)")
    return _Step("Learned preconditioner (3D Poisson with obstacles)", line, body,
                 {"summary": rows, "systems": runs})


def _plot_convergence(histories: dict[str, np.ndarray], rtol: float, path: Path) -> Path:
    fig, ax = _subplots(figsize=(5.5, 3.8))
    for name, norms in histories.items():
        ax.semilogy(np.arange(len(norms)), norms, label=name)
    ax.axhline(rtol, color="k", lw=0.7, ls="--")
    ax.set_xlabel("iteration")
    ax.set_ylabel("relative residual")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    return save_figure(fig, path, "first Poisson system of the sequence")


# -- 4. optimal transport ---------------------------------------------------------------------
def _optimal_transport(ctx: dict) -> _Step:
    sizes, device = ctx["sizes"], ctx["device"]
    n = sizes.transport_points
    a, b, C = (t.to(device) for t in random_assignment(n, seed=ctx["seed"], dtype=torch.float64))
    eps = 1.0 / sizes.transport_eta
    results = {}
    for name, solve in (("Sinkhorn", lambda: sinkhorn(a, b, C, eps, tol=1e-9, maxiter=200_000,
                                                      return_plan=False)),
                        ("Sinkhorn-Newton-Sparse", lambda: sinkhorn_newton_sparse(
                            a, b, C, eps, tol=1e-9, return_plan=False))):
        synchronize(device)
        t0 = time.perf_counter()
        res = solve()
        synchronize(device)
        results[name] = (res, time.perf_counter() - t0)
    rows = [{"method": name, "iterations": res.iterations, "seconds": seconds,
             "marginal_error": float(res.marginal_error), "cost": float(res.cost),
             "status": res.status.name} for name, (res, seconds) in results.items()]
    _plot_transport(results, ctx["out"] / "transport-convergence.png")
    sk, sns = rows
    line = (f"optimal transport: {n}x{n} assignment, eps 1/{sizes.transport_eta:g}: Sinkhorn "
            f"{sk['iterations']} iterations {sk['seconds']:.2f} s, Sinkhorn-Newton-Sparse "
            f"{sns['iterations']} iterations {sns['seconds']:.2f} s (both to marginal error 1e-9)")
    body = (f"A random {n} x {n} assignment problem (uniform marginals, uniform random costs) with "
            f"entropic regularisation eps = 1/{sizes.transport_eta:g}, both solvers to an L1 "
            "marginal error of 1e-9 (`pdekit bench ot` runs the paper's problems beside POT).\n\n"
            + _markdown_table(rows, ["method", "iterations", "seconds", "marginal_error", "cost", "status"])
            + "\n\n![transport](transport-convergence.png)")
    return _Step("Optimal transport", line, body, {"problem": f"assignment-{n}", "eps": eps, "rows": rows})


def _plot_transport(results: dict, path: Path) -> Path:
    fig, axes = _subplots(1, 2, figsize=(10, 3.6))
    for name, (res, _) in results.items():
        errors = res.marginal_error_history.numpy()
        axes[0].loglog(np.maximum(res.history_iterations.numpy(), 1), errors, label=name)
        axes[1].semilogy(res.history_seconds.numpy(), errors, label=name)
    axes[0].set_xlabel("iteration")
    axes[1].set_xlabel("seconds")
    for ax in axes:
        ax.set_ylabel("L1 marginal error")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    return save_figure(fig, path, "Sinkhorn vs Sinkhorn-Newton-Sparse")


# -- 5. SOR with a bandit-tuned relaxation factor ---------------------------------------------
def _bandit_sor(ctx: dict) -> _Step:
    sizes = ctx["sizes"]
    sequence = ShiftedLaplacianSequence(sizes.sor_instances, "high", seed=ctx["seed"])
    with serial_on_cpu(torch.device("cpu")):  # tiny systems: one thread is fastest
        table = sor_cost_table(sequence)
    learner = play(PooledChebCB(context_range=sequence.context_range, seed=ctx["seed"]), table)
    best_omega, best_costs = best_fixed_omega(table)
    curves = {
        "omega = 1 (Gauss-Seidel)": fixed_omega_costs(table, 1.0),
        "omega = 1.5": fixed_omega_costs(table, 1.5),
        f"best fixed omega in hindsight ({best_omega:g})": best_costs,
        "bandit (PooledChebCB)": np.asarray(learner.costs),
        "instance-optimal": instance_optimal_costs(table),
    }
    T = len(sequence)
    rows = [{"method": name, "iterations_per_system": float(np.sum(c)) / T, "total": int(np.sum(c))}
            for name, c in curves.items()]
    _plot_bandit(curves, ctx["out"] / "sor-bandit.png")
    gs, bandit = curves["omega = 1 (Gauss-Seidel)"].sum(), curves["bandit (PooledChebCB)"].sum()
    line = (f"SOR with a bandit-tuned omega: {T} shifted Laplacians, bandit "
            f"{bandit / T:.0f} sweeps per system vs {gs / T:.0f} at omega = 1 and "
            f"{best_costs.sum() / T:.0f} at the best fixed omega in hindsight ({best_omega:g})")
    body = (f"{T} systems (A + c_t I) x = b_t on a 10 x 10 grid (the paper's high-variance shifts), "
            "natural-ordering SOR to 1e-8. The bandit chooses omega before each solve from the "
            "shift alone and learns from the sweeps it paid; the best fixed omega is only known "
            "after the whole sequence. With a few thousand systems (`pdekit bench sor-bandit`) the "
            "bandit overtakes the best fixed omega.\n\n"
            + _markdown_table(rows, ["method", "iterations_per_system", "total"])
            + "\n\n![bandit](sor-bandit.png)")
    return _Step("SOR with a bandit-tuned relaxation factor", line, body, {"rows": rows})


def _plot_bandit(curves: dict[str, np.ndarray], path: Path) -> Path:
    fig, ax = _subplots(figsize=(5.5, 3.8))
    for name, costs in curves.items():
        ax.plot(np.arange(1, len(costs) + 1), np.cumsum(costs), label=name)
    ax.set_xlabel("system")
    ax.set_ylabel("cumulative SOR sweeps")
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    return save_figure(fig, path, "SOR: bandit vs fixed omega")


def _subplots(*grid: int, figsize: tuple[float, float]):
    """A figure on the non-interactive backend (the demo only writes PNGs)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(*grid, figsize=figsize)


# -- the report -------------------------------------------------------------------------------
def _markdown_table(rows: list[dict], columns: list[str]) -> str:
    def cell(value) -> str:
        if isinstance(value, float):
            return f"{value:.4g}"
        return str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def _write_report(out: Path, steps: list[_Step], sizes: DemoSizes, device: torch.device, seed: int,
                  quick: bool, seconds: float) -> Path:
    date = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    lines = [f"# pdekit {__version__} demo", "",
             f"{'Quick' if quick else 'Full'} run, seed {seed}, {describe_device(device)}, "
             f"torch {torch.__version__}, {date}, {seconds:.0f} s in all. "
             f"Re-run: `pdekit demo{' --quick' if quick else ''} --seed {seed}`.", "",
             "| step | result |", "|---|---|"]
    lines += [f"| {k} | {s.line} |" for k, s in enumerate(steps, start=1)]
    for k, step in enumerate(steps, start=1):
        lines += ["", f"## {k}. {step.title}", "", step.body]
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n")
    results = {"pdekit_version": __version__, "date": date, "device": describe_device(device),
               "seed": seed, "quick": quick, "seconds": seconds, "sizes": asdict(sizes),
               "steps": {s.title: {"line": s.line, **s.numbers} for s in steps}}
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    return report

