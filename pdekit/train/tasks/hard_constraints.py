"""Physics-only training of the hard-constraint (PI-HC, PI-HC-MoE) and soft-constraint (PI-SC)
models with the one Trainer (Chalapathi et al., "Scaling physics-informed hard constraints with
mixture-of-experts", ICLR 2024).

Batches are whole trajectories ``u`` (B, nt, nx) of a diffusion-sorption dataset (every
``stride``-th cell, the first ``train_frames`` stored times) with their grid ``t``, ``x``; the
model sees only the initial condition ``u[:, 0]`` and the grid, and the loss is the physics
loss (PDE residual over the grid plus initial and boundary residuals,
:func:`pdekit.models.hard_constraint.physics_loss`): no interior labels. The labels score the
model: relative L2 over the space-time field, within the training horizon and beyond it (the
extrapolation test), and the PDE residual.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pdekit.models.hard_constraint import physics_loss
from pdekit.train.evaluate import save_figure
from pdekit.train.task import Task, register_task

__all__ = ["PhysicsInformedTask", "Trajectories"]


def _core(model: torch.nn.Module) -> torch.nn.Module:
    while hasattr(model, "module") or hasattr(model, "_orig_mod"):
        model = model.module if hasattr(model, "module") else model._orig_mod
    return model


class Trajectories:
    """Preloaded trajectories ``u`` (N, nt, *space) of a dataset's output field (``u`` of
    diffusion-sorption, ``w`` of Navier-Stokes), every ``stride``-th point along each spatial
    axis; batches are ``(u, t, x)`` (``t``, ``x`` the same grid in every batch)."""

    def __init__(self, dataset, *, stride: int = 1, frames: int | None = None, field: str | None = None):
        field = field or dataset.outputs[0]
        if field not in dataset.fields:
            raise ValueError(f"Trajectories: the dataset has no field {field!r} (fields: {dataset.fields})")
        if len(dataset) == 0:
            raise ValueError("Trajectories: the dataset is empty")
        loader = torch.utils.data.DataLoader(dataset, batch_size=64)
        u = torch.cat([item[field] for item in loader]).float()
        frames = u.shape[1] if frames is None else int(frames)
        if not 2 <= frames <= u.shape[1]:
            raise ValueError(f"Trajectories: `frames` must lie in [2, {u.shape[1]}], got {frames}")
        space = (slice(None, None, stride),) * (u.dim() - 2)
        self.u = u[(slice(None), slice(0, frames), *space)].contiguous()
        self.t = dataset.coords["t"][:frames].double()
        self.x = dataset.coords["x"][::stride].double()

    def __len__(self) -> int:
        return len(self.u)

    def batches(self, batch_size: int, order: torch.Tensor | None = None, rank: int = 0, world: int = 1):
        order = torch.arange(len(self)) if order is None else order
        for i in range(0, len(order), batch_size):
            index = order[i:i + batch_size][rank::world]
            if len(index):
                yield self.u[index], self.t, self.x


@register_task("physics-informed")
class PhysicsInformedTask(Task):
    """Physics-only loss for the ``pi-hc`` / ``pi-sc`` models (diffusion-sorption) and the
    ``pi-hc3d`` / ``pi-sc3d`` models (2D Navier-Stokes).

    Parameters
    ----------
    stride : int
        Keep every ``stride``-th point along each spatial axis (1: the full grid).
    train_frames : int, optional
        Stored times used in training (and in the in-horizon metrics); the rest of the
        trajectory is the extrapolation test (paper: trained to t = 400 of 500, 81 of 101 frames).
    """

    select = "test_relative_l2"

    def __init__(self, stride: int = 1, train_frames: int | None = None):
        if stride < 1:
            raise ValueError(f"PhysicsInformedTask: `stride` must be >= 1, got {stride}")
        self.stride = int(stride)
        self.train_frames = None if train_frames is None else int(train_frames)

    def make_batches(self, dataset, *, inputs, outputs, settings) -> Trajectories:
        return Trajectories(dataset, stride=self.stride, frames=self.train_frames)

    def wrap_model(self, model, batches, dataset, settings):
        return model  # the physics loss needs the unnormalised solution

    def loss(self, model, batch, settings) -> torch.Tensor:
        u, t, x = batch
        u0 = u[:, 0]
        pred = model(u0, t, x)
        core = _core(model)
        return physics_loss(core.physics, pred, u0, t, x, getattr(core, "last_derivatives", None))

    @torch.no_grad()
    def _scores(self, model, u: torch.Tensor, t: torch.Tensor, x: torch.Tensor, *, device,
                batch_size: int = 8) -> dict[str, np.ndarray]:
        core = _core(model)
        was_training = core.training
        core.eval()
        errors, errors_in, errors_out, residual_max, residual_rms, reference_max = [], [], [], [], [], []
        iterations, seconds = [], 0.0
        horizon = self.train_frames or u.shape[1]
        t, x = t.to(device), x.to(device)
        for i in range(0, len(u), batch_size):
            ref = u[i:i + batch_size].to(device)
            start = time.perf_counter()
            pred = model(ref[:, 0], t, x).float()
            seconds += time.perf_counter() - start
            errors.append(_relative_l2(pred, ref))
            errors_in.append(_relative_l2(pred[:, :horizon], ref[:, :horizon]))
            if horizon < u.shape[1]:
                errors_out.append(_relative_l2(pred[:, horizon:], ref[:, horizon:]))
            derivatives = getattr(core, "last_derivatives", None)
            if derivatives is not None:
                derivatives = tuple(d.double() for d in derivatives)
            r = core.physics.field_residuals(pred.double(), ref[:, 0].double(), t, x, derivatives)["pde"]
            residual_max.append(r.abs().flatten(1).amax(1))
            residual_rms.append(r.square().flatten(1).mean(1).sqrt())
            r_ref = core.physics.field_residuals(ref.double(), ref[:, 0].double(), t, x)["pde"]
            reference_max.append(r_ref.abs().flatten(1).amax(1))
            if "iterations" in getattr(core, "last_solve", {}):
                iterations.append(core.last_solve["iterations"].float().flatten())
        core.train(was_training)
        out = {"relative_l2": torch.cat(errors), "relative_l2_horizon": torch.cat(errors_in),
               "residual_max": torch.cat(residual_max), "residual_rms": torch.cat(residual_rms),
               "reference_residual_max": torch.cat(reference_max)}
        if errors_out:
            out["relative_l2_extrapolated"] = torch.cat(errors_out)
        if iterations:
            out["lm_iterations"] = torch.cat(iterations)
        out = {k: v.double().cpu().numpy() for k, v in out.items()}
        out["seconds_per_sample"] = np.array(seconds / len(u))
        return out

    def evaluate(self, model, batches: Trajectories, *, device, settings) -> dict[str, float]:
        s = self._scores(model, batches.u, batches.t, batches.x, device=device)
        return {"test_relative_l2": float(s["relative_l2"].mean()),
                "test_relative_l2_std": float(s["relative_l2"].std()),
                "test_residual_max": float(s["residual_max"].max()),
                "test_residual_rms": float(s["residual_rms"].mean())}

    def report(self, model, dataset, *, device="cpu", metadata=None) -> dict[str, Any]:
        """Metrics over the whole stored trajectory: ``relative_l2`` (space-time field, mean over
        samples; ``relative_l2_horizon`` within the training horizon,
        ``relative_l2_extrapolated`` beyond it), ``residual_max`` (the largest PDE residual
        ``|500 (u_t - D/R(u) u_xx)|`` on the grid, with a hard-constraint model's own derivatives
        on its basis; ``reference_residual_max``: the same for the classical solution by finite
        differences, the discretisation's floor), LM iterations, inference time."""
        data = Trajectories(dataset, stride=self.stride)
        s = self._scores(model, data.u, data.t, data.x, device=device)
        metrics: dict[str, float] = {}
        for key, values in s.items():
            if key == "seconds_per_sample":
                metrics[key] = float(values)
            elif key.endswith("_max"):
                metrics[key] = float(values.max())
            else:
                metrics[key] = float(values.mean())
                metrics[f"{key}_std"] = float(values.std())
        return {"metrics": metrics, "samples": len(data), "grid": [len(data.t), len(data.x)],
                "train_frames": self.train_frames, "stride": self.stride}

    def summary(self, result: dict) -> str:
        m = result["metrics"]
        text = f"relative L2 {m['relative_l2']:.4g} +- {m['relative_l2_std']:.2g}"
        if "relative_l2_extrapolated" in m:
            text += f" (extrapolated {m['relative_l2_extrapolated']:.4g})"
        return text + (f", residual max {m['residual_max']:.3g}, "
                       f"{m['seconds_per_sample'] * 1e3:.3g} ms per sample")

    def plot(self, model, dataset, path: str | os.PathLike, *, device="cpu", metadata=None) -> Path | None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        data = Trajectories(dataset, stride=self.stride)
        ref = data.u[:1]
        with torch.no_grad():
            core = _core(model)
            core.eval()
            pred = model(ref[:, 0].to(device), data.t.to(device), data.x.to(device)).float().cpu()
        fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
        extent = [float(data.x[0]), float(data.x[-1]), float(data.t[-1]), float(data.t[0])]
        if ref.dim() == 4:  # (B, t, x, y): the last frame
            ref, pred = ref[:, -1], pred[:, -1]
            extent = [0.0, 1.0, 1.0, 0.0]
        for ax, field, title in zip(axes, (ref[0].numpy(), pred[0].numpy(), (pred[0] - ref[0]).numpy()),
                                    ("reference", "prediction", "error"), strict=True):
            cmap = "RdBu_r" if title == "error" else "viridis"
            im = ax.imshow(field, aspect="auto", extent=extent, cmap=cmap)
            ax.set_title(title)
            ax.set_xlabel("x")
            fig.colorbar(im, ax=ax)
        axes[0].set_ylabel("t")
        if self.train_frames and data.u.dim() == 3:
            for ax in axes:
                ax.axhline(float(data.t[self.train_frames - 1]), color="w", ls="--", lw=0.8)
        return save_figure(fig, path, dpi=120)


def _relative_l2(pred: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    return (pred - ref).flatten(1).norm(dim=1) / ref.flatten(1).norm(dim=1).clamp_min(1e-30)
