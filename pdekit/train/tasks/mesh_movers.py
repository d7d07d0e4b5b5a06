"""Training and evaluation of the data-free mesh mover and of MM-PDE (Hu, Wang, Ma, ICLR 2024).

Datasets are trajectories ``u (t, x, y)`` on the periodic ``N x N`` nodes ``i / N`` (the
``burgers2d`` problem, stored at 192^2); the learned models run on every ``N / size``-th node
(48^2). The mesh lives on the square spanned by those nodes, ``[0, (size - 1) / size]^2``,
mapped to the computational square ``[0, 1]^2``; the stored fine field gives the truth between
the coarse nodes (spectrally, :func:`pdekit.classical.burgers2d.fourier_interpolate`).

- ``mesh-mover`` (:class:`MeshMoverTask`): no mesh data; batches are coarse states, the loss is
  the Monge-Ampere residual + boundary + convexity loss
  (:func:`pdekit.models.mesh_mover.mesh_mover_loss`). The report measures the piecewise-linear
  interpolation error of the solution from the moved mesh against the uniform mesh with the same
  nodes (and the classical Monge-Ampere mesh), tangled cells and the equidistribution spread.
- ``mmpde`` (:class:`NextStepTask`): one-step MSE on consecutive coarse frames; for MM-PDE the
  mover's weights come from ``mover_checkpoint`` and the learnable interpolations are pre-trained
  (uniform -> moved -> uniform reconstruction) before training. The report gives the one-step
  MSE over all start times (the paper's metric) and the rollout relative L2.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pdekit.classical.burgers2d import fourier_interpolate
from pdekit.classical.moving_mesh import (
    equidistribution_spread,
    gradient_monitor,
    interpolate_from_mesh,
    solve_monge_ampere,
    tangled_cells,
    uniform_mesh,
)
from pdekit.train.evaluate import save_figure
from pdekit.train.task import Task, register_task

__all__ = ["CoarseTrajectories", "MeshMoverTask", "NextStepTask", "coarse_trajectories",
           "interpolation_error"]


def _core(model: torch.nn.Module) -> torch.nn.Module:
    while hasattr(model, "module"):
        model = model.module
    return model


def coarse_trajectories(dataset, size: int, field: str = "u",
                        limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(coarse (S, T, size, size), fine (S, T, N, N))`` float64 trajectories of ``dataset``."""
    count = len(dataset) if limit is None else min(limit, len(dataset))
    fine = torch.stack([torch.as_tensor(dataset[i][field]) for i in range(count)]).double()
    if fine.ndim != 4 or fine.shape[-1] % size:
        raise ValueError(f"coarse_trajectories: field {field!r} must be (t, N, N) with N a multiple "
                         f"of {size}, got {tuple(fine.shape[1:])}")
    step = fine.shape[-1] // size
    return fine[..., ::step, ::step].contiguous(), fine


def interpolation_error(mesh: torch.Tensor, fine: torch.Tensor) -> torch.Tensor:
    """Relative L2 error ``(B,)`` of the piecewise-linear interpolant on ``mesh (B, n, n, 2)``
    (nodes in ``[0, 1]^2``) of periodic fields stored on ``N x N`` nodes ``i / N``
    (``fine (B, N, N)``, ``N`` a multiple of ``n``).

    The mesh covers the hull of the coarse nodes, ``[0, (n - 1) / n]^2``; the field is sampled
    exactly (spectrally, :func:`~pdekit.classical.burgers2d.fourier_interpolate`) at the mesh
    nodes and the interpolant compared with the stored field on the fine nodes inside the hull.
    The quantity the data-free mesh mover's theory bounds (Hu et al. 2024, section 3.1).
    """
    batch, n, big = mesh.shape[0], mesh.shape[1], fine.shape[-1]
    if big % n:
        raise ValueError(f"interpolation_error: the fine grid ({big}) must be a multiple of the mesh "
                         f"({n})")
    mesh, fine = mesh.double().cpu(), fine.double().cpu()
    step = big // n
    inside = (n - 1) * step + 1
    truth = fine[:, :inside, :inside].reshape(batch, -1)
    points = uniform_mesh(inside, dtype=torch.float64).reshape(-1, 2)
    values = fourier_interpolate(fine, mesh.reshape(batch, -1, 2) * ((n - 1) / n)).reshape(batch, n, n)
    interp = interpolate_from_mesh(mesh, values, points)
    return (interp - truth).norm(dim=1) / truth.norm(dim=1)


class CoarseTrajectories:
    """Batches from coarse trajectories ``(S, T, n, n)``.

    ``pairs=False``: ``(u,)`` states, all frames of all trajectories. ``pairs=True``:
    ``(u_t, u_next, t)`` for every start frame. ``per_trajectory``: instead, that many items
    per trajectory, each at a frame drawn when batched (torch's global generator; an epoch then
    sees ``per_trajectory`` random frames of every trajectory).
    """

    def __init__(self, coarse: torch.Tensor, *, pairs: bool, per_trajectory: int = 0,
                 dtype=torch.float32):
        self.coarse = coarse.to(dtype)
        self.pairs = pairs
        s, t = coarse.shape[:2]
        self.frames = frames = t - 1 if pairs else t
        self.per_trajectory = per_trajectory
        if per_trajectory:
            traj = torch.arange(s).repeat(per_trajectory)
            self.index = torch.stack((traj, torch.full_like(traj, -1)), -1)
        else:
            grid = torch.meshgrid(torch.arange(s), torch.arange(frames), indexing="ij")
            self.index = torch.stack(grid, -1).reshape(-1, 2)

    def __len__(self) -> int:
        return len(self.index)

    def batches(self, batch_size: int, order: torch.Tensor | None = None, rank: int = 0, world: int = 1):
        order = torch.arange(len(self)) if order is None else order
        for i in range(0, len(order), batch_size):
            idx = self.index[order[i : i + batch_size][rank::world]]
            if len(idx) == 0:
                continue
            s, t = idx[:, 0], idx[:, 1]
            if self.per_trajectory:
                t = torch.randint(0, self.frames, (len(s),))
            if self.pairs:
                time = t.to(self.coarse.dtype) / (self.coarse.shape[1] - 1)
                yield self.coarse[s, t], self.coarse[s, t + 1], time
            else:
                yield (self.coarse[s, t],)


@register_task("mesh-mover")
class MeshMoverTask(Task):
    """The data-free mesh mover (see the module docstring).

    Parameters
    ----------
    size : int
        Coarse grid points per side (48).
    points, boundary_points : int
        Interior collocation points (drawn ~ M) and points per wall, per state.
    boundary_weight, convexity_weight : float
        Loss weights (paper: 1000 and 1).
    frame_stride : int
        The report evaluates frames ``frame_stride, 2 frame_stride, ...`` of every test
        trajectory.
    eval_states : int
        Test states scored during training.
    augment : bool
        Train on each batch under a random symmetry of the square (flips in ``x`` and ``y``,
        transposition; our addition): the Monge-Ampere map of a reflected state is the
        reflected map, so this is still data-free and multiplies the states by 8.
    """

    select = "test_residual"
    maximize = False

    def __init__(self, size: int = 48, points: int = 256, boundary_points: int = 16,
                 boundary_weight: float = 1000.0, convexity_weight: float = 1.0, frame_stride: int = 5,
                 eval_states: int = 64, augment: bool = False):
        self.size, self.points, self.boundary_points = size, points, boundary_points
        self.augment = augment
        self.boundary_weight, self.convexity_weight = boundary_weight, convexity_weight
        self.frame_stride, self.eval_states = frame_stride, eval_states

    def make_batches(self, dataset, *, inputs=None, outputs=None, settings=None):
        return CoarseTrajectories(coarse_trajectories(dataset, self.size)[0], pairs=False)

    def wrap_model(self, model, batches, dataset, settings):
        return model

    def loss(self, model, batch, settings=None) -> torch.Tensor:
        from pdekit.models.mesh_mover import mesh_mover_loss

        (u,) = batch
        if self.augment and _core(model).training:
            flips = torch.randint(0, 2, (3,)).tolist()
            u = u.flip(1) if flips[0] else u
            u = u.flip(2) if flips[1] else u
            u = u.transpose(1, 2) if flips[2] else u
        return mesh_mover_loss(_core(model), u, points=self.points, boundary_points=self.boundary_points,
                               boundary_weight=self.boundary_weight,
                               convexity_weight=self.convexity_weight)["loss"]

    def _node_quality(self, model, u: torch.Tensor) -> dict[str, torch.Tensor]:
        """Residual, det(I + Hess phi) and the mesh at the nodes of states ``u``."""
        from pdekit.models.mesh_mover import monge_ampere_residual, potential_derivatives

        core = _core(model)
        monitor = gradient_monitor(u, alpha=core.alpha)
        w = torch.ones(u.shape[-1], dtype=u.dtype, device=u.device)
        w[0] = w[-1] = 0.5
        theta = (monitor * w[:, None] * w[None, :]).sum(dim=(1, 2)) / w.sum() ** 2
        xi = uniform_mesh(self.size, dtype=u.dtype, device=u.device).reshape(1, -1, 2)
        xi = xi.expand(u.shape[0], -1, -1)
        with torch.enable_grad():
            _, grad, hess = potential_derivatives(core, u, xi, create_graph=False)
        det = (1 + hess[..., 0, 0]) * (1 + hess[..., 1, 1]) - hess[..., 0, 1] * hess[..., 1, 0]
        residual = monge_ampere_residual(grad, hess, monitor, theta, xi).abs().mean(dim=1)
        mesh = core.move(u)
        return {"residual": residual.detach(), "det": det.detach(), "mesh": mesh, "monitor": monitor}

    def evaluate(self, model, batches, *, device, settings=None) -> dict[str, float]:
        model.eval()
        count = min(self.eval_states, len(batches))
        order = torch.linspace(0, len(batches) - 1, count).long()
        u = next(iter(batches.batches(count, order)))[0].to(device)
        q = self._node_quality(model, u)
        tangled = torch.maximum((q["det"] <= 0).sum(dim=1), tangled_cells(q["mesh"]))
        return {"test_residual": float(q["residual"].mean()),
                "test_tangled_cells": float(tangled.sum()),
                "test_equidistribution_spread":
                    float(equidistribution_spread(q["mesh"], q["monitor"]).mean())}

    def _meshes(self, model, dataset, device, limit: int | None = None) -> dict[str, Any]:
        coarse, fine = coarse_trajectories(dataset, self.size, limit=limit)
        frames = list(range(self.frame_stride, coarse.shape[1], self.frame_stride)) or [coarse.shape[1] - 1]
        u_coarse = coarse[:, frames].reshape(-1, self.size, self.size)
        u_fine = fine[:, frames].reshape(-1, fine.shape[-1], fine.shape[-1])
        return {"coarse": u_coarse, "fine": u_fine, "frames": frames, "trajectories": coarse.shape[0]}

    def report(self, model, dataset, *, device="cpu", metadata=None) -> dict[str, Any]:
        """Interpolation error (relative L2 over the fine nodes inside the mesh) from the learned
        mover's mesh, the uniform mesh and the classical Monge-Ampere mesh with the same nodes;
        tangled cells; equidistribution spread; seconds per mesh for the mover and the classical
        solve."""
        device = torch.device(device)
        core = _core(model).to(device).eval()
        data = self._meshes(model, dataset, device)
        n = self.size
        u = data["coarse"].to(device, torch.float32)

        q = self._node_quality(core, u)
        started = time.perf_counter()
        core.move(u)  # timed: one network call (and one backward for grad phi)
        if device.type == "cuda":
            torch.cuda.synchronize()
        mover_seconds = time.perf_counter() - started
        meshes = {"learned": q["mesh"].double().cpu()}
        monitor = gradient_monitor(data["coarse"], alpha=core.alpha)
        classical = solve_monge_ampere(monitor.to(device))
        meshes["classical"] = classical.mesh.double().cpu()
        meshes["uniform"] = uniform_mesh(n, dtype=torch.float64)[None].expand(len(u), -1, -1, -1)

        errors = {k: interpolation_error(m, data["fine"]) for k, m in meshes.items()}
        tangled = torch.maximum((q["det"].cpu() <= 0).sum(dim=1), tangled_cells(meshes["learned"]))
        spread = {k: equidistribution_spread(m, monitor) for k, m in meshes.items()}
        metrics = {
            "interpolation_error": float(errors["learned"].mean()),
            "interpolation_error_uniform": float(errors["uniform"].mean()),
            "interpolation_error_classical": float(errors["classical"].mean()),
            "tangled_cells": int(tangled.sum()),
            "tangled_cells_classical": int(tangled_cells(meshes["classical"]).sum()),
            "min_det": float(q["det"].min()),
            "monge_ampere_residual": float(q["residual"].mean()),
            "equidistribution_spread": float(spread["learned"].mean()),
            "equidistribution_spread_classical": float(spread["classical"].mean()),
            "equidistribution_spread_uniform": float(spread["uniform"].mean()),
            "seconds_per_mesh": mover_seconds / len(u),
            "seconds_per_mesh_classical": classical.wall_time / len(u),
            "classical_iterations": classical.iterations,
            "meshes": len(u),
            "frames": data["frames"],
        }
        return {"metrics": metrics,
                "per_mesh": {k: [float(e) for e in v] for k, v in errors.items()}}

    def summary(self, result: dict) -> str:
        m = result["metrics"]
        return (f"interpolation error {m['interpolation_error']:.4g} (uniform "
                f"{m['interpolation_error_uniform']:.4g}, classical "
                f"{m['interpolation_error_classical']:.4g}); "
                f"{m['tangled_cells']} tangled cells over {m['meshes']} meshes; "
                f"{m['seconds_per_mesh'] * 1e3:.3g} ms per mesh (classical "
                f"{m['seconds_per_mesh_classical'] * 1e3:.3g} ms)")

    def plot(self, model, dataset, path, *, device="cpu", metadata=None) -> Path | None:
        """The learned and classical moved meshes over the solution, for three test states."""
        core = _core(model).to(device).eval()
        data = self._meshes(model, dataset, device, limit=3)
        u = data["coarse"][:: max(1, len(data["coarse"]) // 3)][:3]
        learned = core.move(u.to(device, torch.float32)).double().cpu()
        classical = solve_monge_ampere(gradient_monitor(u, alpha=core.alpha)).mesh
        return plot_meshes(u, {"learned mover": learned, "classical Monge-Ampere": classical}, path)


def plot_meshes(u: torch.Tensor, meshes: dict[str, torch.Tensor], path, every: int = 1) -> Path:
    """Meshes (``{title: (B, n, n, 2)}``) drawn over the solutions ``u (B, n, n)``, one row per
    state."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, cols = u.shape[0], len(meshes)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 4 * rows), squeeze=False)
    s = np.linspace(0, 1, u.shape[-1])
    for r in range(rows):
        for c, (title, mesh) in enumerate(meshes.items()):
            ax = axes[r, c]
            ax.pcolormesh(s, s, u[r].T.numpy(), cmap="RdBu_r", shading="gouraud")
            m = mesh[r].numpy()
            for i in range(0, m.shape[0], every):
                ax.plot(m[i, :, 0], m[i, :, 1], "k-", lw=0.3)
                ax.plot(m[:, i, 0], m[:, i, 1], "k-", lw=0.3)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title)
    return save_figure(fig, path, dpi=110)


@register_task("mmpde")
class NextStepTask(Task):
    """One-step training of MM-PDE or the uniform-mesh GNN on coarse Burgers frames.

    Parameters
    ----------
    size : int
        Coarse grid points per side (48).
    mover_checkpoint : str
        A trained mesh mover (``pdekit evaluate``-able checkpoint); loaded into an MM-PDE
        model's frozen ``mover`` before training (ignored for the baseline).
    pretrain_steps : int
        Pre-training steps of MM-PDE's learnable interpolations (uniform -> moved -> uniform
        reconstruction of training states; Adam 1e-3).
    eval_trajectories : int
        Test trajectories scored during training.
    pairs_per_trajectory : int
        0: every (frame, next frame) pair of every trajectory in each epoch; ``K > 0``: ``K``
        pairs per trajectory at random start frames (a reduced budget).
    """

    select = "test_one_step_mse"
    maximize = False

    def __init__(self, size: int = 48, mover_checkpoint: str = "", pretrain_steps: int = 200,
                 eval_trajectories: int = 8, pairs_per_trajectory: int = 0):
        self.size, self.mover_checkpoint = size, mover_checkpoint
        self.pairs_per_trajectory = pairs_per_trajectory
        self.pretrain_steps, self.eval_trajectories = pretrain_steps, eval_trajectories

    def make_batches(self, dataset, *, inputs=None, outputs=None, settings=None):
        return CoarseTrajectories(coarse_trajectories(dataset, self.size)[0], pairs=True,
                                  per_trajectory=self.pairs_per_trajectory)

    def wrap_model(self, model, batches, dataset, settings):
        core = _core(model)
        if hasattr(core, "mover") and self.mover_checkpoint:
            from pdekit.models.checkpoint import load_model

            mover = load_model(_resolve(self.mover_checkpoint))
            core.mover.load_state_dict(mover.state_dict())
            core.mover.requires_grad_(False)
            pretrain_interpolation(core, batches.coarse.reshape(-1, self.size, self.size),
                                   steps=self.pretrain_steps)
        return model

    def loss(self, model, batch, settings=None) -> torch.Tensor:
        u, target, t = batch
        return (model(u, t) - target).pow(2).mean(dim=(1, 2))

    @torch.no_grad()
    def _scores(self, model, coarse: torch.Tensor, device, batch_size: int = 8) -> dict[str, Any]:
        model.eval()
        s, frames = coarse.shape[:2]
        u = coarse.to(device, torch.float32)
        one_step = []
        rollout = [u[:, 0]]
        for j in range(frames - 1):
            t = torch.full((s,), j / (frames - 1), device=device)
            pred, roll = [], []
            for i in range(0, s, batch_size):
                pred.append(model(u[i : i + batch_size, j], t[i : i + batch_size]))
                roll.append(model(rollout[-1][i : i + batch_size], t[i : i + batch_size]))
            one_step.append((torch.cat(pred) - u[:, j + 1]).pow(2).mean(dim=(1, 2)))
            rollout.append(torch.cat(roll))
        rollout = torch.stack(rollout, dim=1)
        rel = (rollout[:, 1:] - u[:, 1:]).flatten(1).norm(dim=1) / u[:, 1:].flatten(1).norm(dim=1)
        final = (rollout[:, -1] - u[:, -1]).flatten(1).norm(dim=1) / u[:, -1].flatten(1).norm(dim=1)
        return {"one_step_mse": torch.stack(one_step, 1), "relative_l2": rel, "final": final,
                "rollout": rollout.cpu(), "truth": u.cpu()}

    def evaluate(self, model, batches, *, device, settings=None) -> dict[str, float]:
        out = self._scores(model, batches.coarse[: self.eval_trajectories], device)
        return {"test_one_step_mse": float(out["one_step_mse"].mean()),
                "test_relative_l2": float(out["relative_l2"].mean())}

    def report(self, model, dataset, *, device="cpu", metadata=None) -> dict[str, Any]:
        """``metrics.one_step_mse`` (from ground-truth inputs, averaged over all start frames and
        test trajectories: the paper's metric) and ``metrics.relative_l2`` (autoregressive
        rollout from frame 0 over all frames, relative L2 over space and time; its mean,
        standard deviation and median over the trajectories, and each trajectory's)."""
        device = torch.device(device)
        model = model.to(device)
        coarse, _ = coarse_trajectories(dataset, self.size)
        started = time.perf_counter()
        out = self._scores(model, coarse, device)
        seconds = time.perf_counter() - started
        metrics = {"one_step_mse": float(out["one_step_mse"].mean()),
                   "relative_l2": float(out["relative_l2"].mean()),
                   "relative_l2_std": float(out["relative_l2"].std()) if len(coarse) > 1 else 0.0,
                   "relative_l2_median": float(out["relative_l2"].double().quantile(0.5)),
                   "final_relative_l2": float(out["final"].mean()),
                   "trajectories": int(coarse.shape[0]), "rollout_steps": int(coarse.shape[1] - 1),
                   "seconds_per_trajectory": seconds / coarse.shape[0]}
        return {"metrics": metrics,
                "one_step_mse_per_frame": [float(v) for v in out["one_step_mse"].mean(0)],
                "relative_l2_per_trajectory": [float(v) for v in out["relative_l2"]]}

    def summary(self, result: dict) -> str:
        m = result["metrics"]
        return (f"one-step MSE {m['one_step_mse']:.4g}, rollout relative L2 {m['relative_l2']:.4g} "
                f"(median {m['relative_l2_median']:.4g}, final frame {m['final_relative_l2']:.4g}) over "
                f"{m['trajectories']} trajectories")

    def plot(self, model, dataset, path, *, device="cpu", metadata=None) -> Path | None:
        """Truth and rollout of the first test trajectory at four times."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        coarse, _ = coarse_trajectories(dataset, self.size, limit=1)
        out = self._scores(model.to(device), coarse, torch.device(device))
        frames = np.linspace(1, coarse.shape[1] - 1, 4).astype(int)
        fig, axes = plt.subplots(2, 4, figsize=(14, 7))
        for c, j in enumerate(frames):
            for r, (name, u) in enumerate((("truth", out["truth"]), ("rollout", out["rollout"]))):
                axes[r, c].imshow(u[0, j].T.numpy(), origin="lower", cmap="RdBu_r")
                axes[r, c].set_title(f"{name}, frame {j}")
                axes[r, c].axis("off")
        return save_figure(fig, path, dpi=100)


def _resolve(path: str) -> str:
    """A checkpoint path as given, else relative to the repository root."""
    if os.path.exists(path):
        return path
    root = Path(__file__).resolve().parents[3]
    return str(root / path)


def pretrain_interpolation(model, states: torch.Tensor, *, steps: int = 200, batch: int = 4,
                           lr: float = 1e-3) -> list[float]:
    """Pre-train MM-PDE's learnable interpolations: uniform -> moved mesh -> uniform
    reconstruction of ``states (S, n, n)``, plus the exact values of random linear functions on
    the moved mesh (Hu et al. 2024, section 4). Returns the losses."""
    params = [*model.interpolate_in.parameters(), *model.interpolate_out.parameters()]
    optimiser = torch.optim.Adam(params, lr=lr)
    device = params[0].device  # everything on the model's device
    n = states.shape[-1]
    xi = uniform_mesh(n, dtype=torch.float32, device=device).reshape(1, -1, 2)
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, len(states), (batch,))
        batch_states = states[idx].to(device, torch.float32)
        u = batch_states.reshape(batch, -1)
        with torch.no_grad():
            x = model.moved_mesh(batch_states)
        grid = xi.expand(batch, -1, -1)
        coef = torch.randn(batch, 3, device=device)

        def lin(p, coef=coef):
            return coef[:, None, 0] + (p * coef[:, None, 1:]).sum(-1)

        moved = model.interpolate_in(u, grid, x)
        back = model.interpolate_out(moved, x, grid)
        loss = ((back - u).pow(2).mean() / u.pow(2).mean()
                + (model.interpolate_in(lin(grid), grid, x) - lin(x)).pow(2).mean()
                + (model.interpolate_out(lin(x), x, grid) - lin(grid)).pow(2).mean())
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    return losses
