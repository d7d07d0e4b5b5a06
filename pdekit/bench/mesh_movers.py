"""``pdekit bench mesh-movers``: the shipped data-free mesh mover against the classical
Monge-Ampere mesher, and MM-PDE's k-NN graph building against SciPy's k-d tree, on fresh 2D
Burgers states (Hu, Wang, Ma, "Better Neural PDE Solvers Through Data-Free Mesh Movers", ICLR
2024).

Work: ``trajectories`` random initial conditions of the ``burgers2d`` dataset's generator,
solved pseudo-spectrally on ``4 * 48`` nodes per side, the frames at t = 1/3, 2/3 and 1
subsampled to the 48 x 48 grid the learned models run on.

* problem ``burgers2d-48``: ``pdekit-learned-mover`` (one network call per batch,
  :meth:`~pdekit.models.mesh_mover.DataFreeMeshMover.move`), ``pdekit-classical-monge-ampere``
  (:func:`~pdekit.classical.moving_mesh.solve_monge_ampere` on the mover's monitor) and the
  ``uniform-mesh`` (no work). ``seconds`` for all states batched, ``seconds_per_mesh`` and
  ``seconds_one_state`` (median of single-state calls); ``error`` the relative L2
  interpolation error (:func:`~pdekit.train.tasks.mesh_movers.interpolation_error`),
  ``tangled_cells``.
* problems ``knn-48x48-k8`` and ``knn-48x48-k35`` (MM-PDE's CPU-budget and paper graphs on the
  learned meshes): ``pdekit-knn`` (:func:`~pdekit.models.mmpde.knn_graph` on the device, what
  MM-PDE runs: a k-d tree on the CPU, ``torch.cdist`` and ``topk`` on a GPU),
  ``pdekit-knn-brute`` (the brute force on the CPU) or, on a GPU, ``pdekit-knn-cpu`` (the CPU
  path beside it), and ``scipy-ckdtree`` (a bare k-d tree per mesh, the usual peer).
  ``agreement``: the share of our edges that the bare tree finds too (equidistant neighbours
  may be ranked differently).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
import torch

from pdekit.bench.record import BenchmarkReport, describe_device, format_table, save_figure, synchronize
from pdekit.classical.burgers2d import burgers2d_initial_condition, solve_burgers2d
from pdekit.classical.moving_mesh import gradient_monitor, solve_monge_ampere, tangled_cells, uniform_mesh
from pdekit.linalg._threads import serial_on_cpu
from pdekit.models.checkpoint import load_model
from pdekit.models.mmpde import knn_graph
from pdekit.train.tasks.mesh_movers import interpolation_error

__all__ = ["plot", "run", "summary_table"]

CHECKPOINT = Path(__file__).resolve().parents[2] / "solvers" / "checkpoints" / "mesh-mover-burgers2d.pt"
SIZE, FINE, NU = 48, 4 * 48, 0.004
NEIGHBOURS = (8, 35)


def burgers_states(trajectories: int, *, fine: int = FINE,
                   seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(coarse (S, 48, 48), fine (S, fine, fine))`` float64 Burgers states at t = 1/3, 2/3, 1
    of ``trajectories`` random initial conditions (the ``burgers2d`` generator)."""
    rng = np.random.default_rng(seed)
    u0 = torch.tensor(np.stack([burgers2d_initial_condition(fine, rng) for _ in range(trajectories)]))
    u = solve_burgers2d(u0, nu=NU, t_end=1.0, frames=4)[:, 1:]
    u = u.reshape(-1, fine, fine)
    return u[:, :: fine // SIZE, :: fine // SIZE].contiguous(), u


def _median_seconds(fn, items, device) -> float:
    times = []
    for item in items:
        synchronize(device)
        started = time.perf_counter()
        fn(item)
        synchronize(device)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _batched_seconds(fn, device, repeat: int = 3) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        synchronize(device)
        started = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _ckdtree_edges(pos: np.ndarray, k: int) -> list[np.ndarray]:
    from scipy.spatial import cKDTree

    out = []
    for nodes in pos:
        _, index = cKDTree(nodes).query(nodes, k=k + 1)
        out.append(index[:, 1:])  # the node itself first
    return out


def run(
    device: str | torch.device = "cpu",
    *,
    trajectories: int | None = None,
    quick: bool = False,
    checkpoint: str | Path = CHECKPOINT,
    echo=print,
    **_unused,
) -> BenchmarkReport:
    """Time the learned mesh mover against the classical mesher, and k-NN graph building.

    Parameters
    ----------
    trajectories : int, optional
        Random Burgers trajectories, three states each (default 8; 1 with ``quick``, which also
        solves on 96 nodes per side instead of 192).
    checkpoint : path
        The mesh mover (default the shipped ``mesh-mover-burgers2d.pt``).
    """
    device = torch.device(device)
    count = trajectories or (1 if quick else 8)
    coarse, fine = burgers_states(count, fine=2 * SIZE if quick else FINE)
    states = len(coarse)
    report = BenchmarkReport("mesh-movers", describe_device(device))
    echo(f"device: {report.device}; {states} Burgers states at {SIZE}^2 (truth on {fine.shape[-1]}^2)")
    mover = load_model(checkpoint).to(device).eval()
    u = coarse.to(device, torch.float32)
    monitor = gradient_monitor(coarse.to(device), alpha=mover.alpha)
    problem = f"burgers2d-{SIZE}"
    with serial_on_cpu(device), torch.no_grad():
        learned = mover.move(u)
        learned_batch = _batched_seconds(lambda: mover.move(u), device)
        learned_one = _median_seconds(lambda i: mover.move(u[i : i + 1]), range(states), device)
        classical = solve_monge_ampere(monitor)
        classical_batch = _batched_seconds(lambda: solve_monge_ampere(monitor), device, repeat=1)
        classical_one = _median_seconds(lambda i: solve_monge_ampere(monitor[i : i + 1]), range(states),
                                        device)
    meshes = {"pdekit-learned-mover": (learned, learned_batch, learned_one),
              "pdekit-classical-monge-ampere": (classical.mesh, classical_batch, classical_one),
              "uniform-mesh": (uniform_mesh(SIZE, dtype=torch.float64)[None].expand(states, -1, -1, -1),
                               None, None)}
    for method, (mesh, batch_seconds, one_seconds) in meshes.items():
        error = interpolation_error(mesh, fine)
        extra = {"iterations": classical.iterations} if method.endswith("monge-ampere") else {}
        record = report.add(problem, method, meshes=states, seconds=batch_seconds,
                            seconds_per_mesh=None if batch_seconds is None else batch_seconds / states,
                            seconds_one_state=one_seconds, error=float(error.mean()),
                            tangled_cells=int(tangled_cells(mesh.double().cpu()).sum()), **extra)
        timing = "" if batch_seconds is None else (f", {1e3 * record['seconds_per_mesh']:.3g} ms per mesh "
                                                   f"batched, {1e3 * one_seconds:.3g} ms one state")
        echo(f"[{problem}] {method}: interpolation error {record['error']:.4g}{timing}")

    pos = learned.reshape(states, -1, 2).float()
    for k in NEIGHBOURS:
        problem = f"knn-{SIZE}x{SIZE}-k{k}"
        calls = {"pdekit-knn": (pos, "auto"), "pdekit-knn-brute": (pos, "brute")}
        if device.type != "cpu":  # on a GPU "auto" is the brute force; time the CPU path beside it
            calls = {"pdekit-knn": (pos, "auto"), "pdekit-knn-cpu": (pos.cpu(), "auto")}
        host = pos.cpu().double().numpy()
        with serial_on_cpu(device):
            started = time.perf_counter()
            tree = _ckdtree_edges(host, k)
            tree_seconds = time.perf_counter() - started
            runs = {name: (knn_graph(p, k, method=m),
                           _batched_seconds(lambda p=p, m=m: knn_graph(p, k, method=m), p.device))  # noqa: B023
                    for name, (p, m) in calls.items()}
        # agreement: the share of our (neighbour, node) pairs that the tree finds too
        total = host.shape[0] * host.shape[1]
        reference = np.concatenate([t + b * host.shape[1] for b, t in enumerate(tree)])  # (B N, k)
        reference_keys = (np.arange(total)[:, None] * total + reference).ravel()
        for method, (edges, seconds) in runs.items():
            keys = edges[1].cpu().numpy().astype(np.int64) * total + edges[0].cpu().numpy()
            agreement = float(np.isin(keys, reference_keys).mean())
            record = report.add(problem, method, meshes=states, neighbours=k, seconds=seconds,
                                seconds_per_mesh=seconds / states, agreement=agreement)
            echo(f"[{problem}] {method}: {1e3 * record['seconds_per_mesh']:.3g} ms per mesh, "
                 f"{100 * agreement:.2f} % of the edges as the k-d tree")
        record = report.add(problem, "scipy-ckdtree", meshes=states, neighbours=k, seconds=tree_seconds,
                            seconds_per_mesh=tree_seconds / states)
        echo(f"[{problem}] scipy-ckdtree: {1e3 * record['seconds_per_mesh']:.3g} ms per mesh")
    return report


def plot(report: BenchmarkReport, path: str | Path) -> Path:
    """Milliseconds per mesh: the movers (batched and one state), and k-NN graph building."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.2))
    movers = [r for r in report.records if r["problem"].startswith("burgers2d") and r["seconds"] is not None]
    labels = [r["method"].removeprefix("pdekit-") for r in movers]
    y = np.arange(len(movers))
    left.barh(y - 0.2, [1e3 * r["seconds_per_mesh"] for r in movers], height=0.4, label="batched")
    left.barh(y + 0.2, [1e3 * r["seconds_one_state"] for r in movers], height=0.4, label="one state")
    left.set_yticks(y, [f"{lab}\nerror {r['error']:.4f}" for lab, r in zip(labels, movers, strict=True)])
    left.set_xscale("log")
    left.set_xlabel("ms per mesh")
    left.legend(fontsize=8)
    knn = [r for r in report.records if r["problem"].startswith("knn")]
    names = sorted({r["method"] for r in knn})
    problems = sorted({r["problem"] for r in knn})
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        values = [next((1e3 * r["seconds_per_mesh"] for r in knn
                        if r["problem"] == p and r["method"] == name), np.nan) for p in problems]
        offset = (i - (len(names) - 1) / 2) * width
        right.barh(np.arange(len(problems)) + offset, values, height=width, label=name)
    right.set_yticks(np.arange(len(problems)), problems)
    right.set_xscale("log")
    right.set_xlabel("ms per mesh (k-NN graph)")
    right.legend(fontsize=8)
    for ax in (left, right):
        ax.xaxis.set_minor_formatter(NullFormatter())
    return save_figure(fig, path, title=f"pdekit bench mesh-movers ({report.device})")


def summary_table(report: BenchmarkReport) -> str:
    """Per problem and method: seconds per mesh, interpolation error, k-NN agreement."""
    return format_table(report.records, ["problem", "method", "meshes", "seconds_per_mesh",
                                         "seconds_one_state", "error", "tangled_cells", "iterations",
                                         "agreement"])
