"""PDE-Refiner's training and evaluation pipeline (Lippe et al., NeurIPS 2023), shared by
PDE-Refiner and its MSE-trained one-step baseline.

Training pairs come from stored trajectories (a field with dims ``("t", "x")``, e.g. the
``ks1d`` datasets): the model steps ``stride`` stored frames at a time (every 4th frame, 0.8 s
on KS), and each epoch every training trajectory gives one pair at a random offset (torch's
global generator, so a resumed run is exact). The model is conditioned on the PDE scalars
(``dt`` -- multiplied by ``stride``, the model's step -- and ``dx``; ``nu`` with varying
viscosity). The model computes its own loss (``model.training_loss``: v-prediction MSE at a
random refinement level for :class:`~pdekit.models.PDERefiner`, the one-step MSE for
:class:`~pdekit.models.OneStepUNet`); the recipe sets ``normalization = "none"`` (the models
predict a scaled difference) and ``ema_decay = 0.995``.

Evaluation rolls the model out from the first test frame (:mod:`pdekit.train.rollout`) and
reports the high-correlation time (the best checkpoint maximises it).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from pdekit.train.evaluate import save_figure
from pdekit.train.rollout import (
    error_spectrum,
    high_correlation_time,
    pearson_correlation,
    rollout,
    spread_and_error,
)
from pdekit.train.task import Task, register_task

__all__ = ["OneStepTask", "RefinerTask", "TrajectoryBatches", "plot_rollout_comparison", "trajectory_scalars"]


def trajectory_scalars(dataset, names: tuple[str, ...]) -> torch.Tensor:
    """The per-sample scalars ``names`` of a pdekit dataset (read from its shards): ``(S, len(names))``."""
    sources = getattr(dataset, "sources", None)
    if sources is None:
        raise ValueError("trajectory_scalars: the dataset does not say where its shards are "
                         "(open it with pdekit.data.open_dataset)")
    columns = []
    for path, count in sources:
        with h5py.File(path, "r") as handle:
            missing = [n for n in names if n not in handle]
            if missing:
                raise KeyError(f"trajectory_scalars: {Path(path).name} has no scalar {missing[0]!r}")
            columns.append(np.stack([np.asarray(handle[n][:count], np.float64) for n in names], axis=1))
    return torch.as_tensor(np.concatenate(columns))


class TrajectoryBatches:
    """``(u (B, history, N), u_next (B, 1, N), scalars (B, S))`` pairs from trajectories.

    Parameters
    ----------
    dataset : pdekit dataset
        Items ``{field: (T, N)}``, with per-sample scalars in its shards.
    field : str
        The trajectory field.
    stride : int
        Stored frames per model step.
    history : int
        States the model sees.
    scalars : tuple of str
        Per-sample scalars given to the model; ``dt`` is multiplied by ``stride``.
    random_offset : bool
        Draw each pair's first frame uniformly (training); else frame 0.
    """

    def __init__(self, dataset, *, field: str = "u", stride: int = 4, history: int = 1,
                 scalars: tuple[str, ...] = ("dt", "dx"), random_offset: bool = True,
                 dtype: torch.dtype = torch.float32):
        if len(dataset) == 0:
            raise ValueError("TrajectoryBatches: the dataset is empty")
        self.stride, self.history, self.random_offset = stride, history, random_offset
        self.u = torch.stack([dataset[i][field] for i in range(len(dataset))]).to(dtype)
        if self.u.ndim != 3:
            raise ValueError(f"TrajectoryBatches: field {field!r} must be (t, x) per sample, "
                             f"got {tuple(self.u.shape[1:])}")
        if self.u.shape[1] <= stride * history:
            raise ValueError(f"TrajectoryBatches: trajectories of {self.u.shape[1]} frames are too "
                             f"short for stride {stride} and history {history}")
        names = tuple(scalars)
        values = trajectory_scalars(dataset, names) if names else torch.zeros(len(dataset), 0)
        if "dt" in names:
            values[:, names.index("dt")] *= stride
            self.step_seconds = float(values[:, names.index("dt")].mean())
        else:
            self.step_seconds = float(stride)
        self.scalars = values.to(dtype)

    def __len__(self) -> int:
        return self.u.shape[0]

    def batches(self, batch_size: int, order: torch.Tensor | None = None, rank: int = 0,
                world: int = 1) -> Iterator[tuple[torch.Tensor, ...]]:
        order = torch.arange(len(self)) if order is None else order
        span = self.stride * self.history
        for i in range(0, len(order), batch_size):
            index = order[i : i + batch_size]
            if len(index) < world:
                continue
            if self.random_offset:  # drawn for the whole global batch: the same on every rank
                start = torch.randint(0, self.u.shape[1] - span, (len(index),))
            else:
                start = torch.zeros(len(index), dtype=torch.long)
            index, start = index[rank::world], start[rank::world]
            frames = start[:, None] + self.stride * torch.arange(self.history + 1)
            window = self.u[index[:, None], frames]
            yield window[:, : self.history], window[:, self.history :], self.scalars[index]

    def initial_windows(self) -> torch.Tensor:
        """The first ``history`` model-step frames of every trajectory: ``(S, history, N)``."""
        return self.u[:, : self.stride * self.history : self.stride]

    def targets(self) -> torch.Tensor:
        """The frames every model step reaches after the initial window: ``(S, steps, N)``."""
        return self.u[:, self.stride * self.history :: self.stride]


def _core(model: torch.nn.Module) -> torch.nn.Module:
    """The model under DDP / averaging wrappers (they expose ``.module``)."""
    while hasattr(model, "module"):
        model = model.module
    return model


@register_task("refiner")
class RefinerTask(Task):
    """PDE-Refiner's pipeline (see the module docstring).

    Parameters
    ----------
    field : str
        The trajectory field of the dataset.
    stride : int
        Stored frames per model step (4: every 4th frame).
    history : int
        States the model sees (must match the model's ``history``).
    scalars : tuple of str
        Dataset scalars the model is conditioned on.
    eval_trajectories : int
        Test trajectories rolled out at each evaluation during training (the report uses all).
    spread_samples, spread_trajectories : int
        Noise draws and trajectories of the report's spread-versus-error study (stochastic
        models only).
    spectrum_steps : int
        Rollout steps over which the report's error spectrum is averaged.
    """

    select = "test_high_correlation_time"
    maximize = True

    def __init__(self, field: str = "u", stride: int = 4, history: int = 1,
                 scalars: tuple = ("dt", "dx"), eval_trajectories: int = 32,
                 spread_samples: int = 4, spread_trajectories: int = 16, spectrum_steps: int = 10):
        if stride < 1 or history < 1:
            raise ValueError("RefinerTask: `stride` and `history` must be >= 1")
        self.field, self.stride, self.history = field, stride, history
        self.scalar_names = tuple(scalars)
        self.eval_trajectories = eval_trajectories
        self.spread_samples, self.spread_trajectories = spread_samples, spread_trajectories
        self.spectrum_steps = spectrum_steps

    # -- training ----------------------------------------------------------------------------
    def make_batches(self, dataset, *, inputs=None, outputs=None, settings=None, random_offset: bool = True):
        return TrajectoryBatches(dataset, field=self.field, stride=self.stride, history=self.history,
                                 scalars=self.scalar_names, random_offset=random_offset)

    def wrap_model(self, model, batches, dataset, settings):
        return model  # the models predict a scaled difference: no normalisation

    def loss(self, model, batch, settings=None) -> torch.Tensor:
        u, u_next, scalars = batch
        return _core(model).training_loss(u, u_next, scalars)

    def _full_rollouts(self, model, dataset, device) -> tuple[TrajectoryBatches, dict[str, Any]]:
        """Every test trajectory rolled out (remembered for the same model weights and dataset:
        ``pdekit evaluate`` calls :meth:`report` then :meth:`plot`)."""
        key = (id(model), id(dataset), str(device),
               tuple(float(p.detach().double().sum()) for p in list(model.parameters())[:3]))
        cached = getattr(self, "_cache", None)
        if cached is not None and cached[0] == key:
            return cached[1], cached[2]
        batches = self.make_batches(dataset, random_offset=False)
        out = self._rollout_metrics(model, batches, None, device)
        self._cache = (key, batches, out)
        return batches, out

    def _rollout_metrics(self, model, batches: TrajectoryBatches, count: int | None, device,
                         seed: int = 0) -> dict[str, Any]:
        n = len(batches) if count is None else min(count, len(batches))
        u0 = batches.initial_windows()[:n].to(device)
        truth = batches.targets()[:n].to(device)
        scalars = batches.scalars[:n].to(device)
        generator = torch.Generator(device=device).manual_seed(seed)
        model.eval()
        pred = rollout(model, u0, scalars, truth.shape[1], generator=generator, batch_size=128)
        corr = pearson_correlation(pred.double(), truth.double())
        return {"pred": pred, "truth": truth, "correlation": corr,
                "times": high_correlation_time(corr, batches.step_seconds)}

    def evaluate(self, model, batches, *, device, settings=None) -> dict[str, float]:
        """One-step error at frame 0 and the high-correlation time of ``eval_trajectories``
        rollouts."""
        device = torch.device(device)
        out = self._rollout_metrics(model, batches, self.eval_trajectories, device)
        first, truth0 = out["pred"][:, 0], out["truth"][:, 0]
        rel = (first - truth0).norm(dim=-1) / truth0.norm(dim=-1)
        return {"test_high_correlation_time": out["times"][0.8],
                "test_high_correlation_time_0.9": out["times"][0.9],
                "test_relative_l2": float(rel.mean()),
                "test_mse": float((first - truth0).square().mean())}

    # -- after training: `pdekit evaluate` ----------------------------------------------------
    def report(self, model, dataset, *, device="cpu", metadata=None) -> dict[str, Any]:
        """Rollouts of every test trajectory: ``metrics.high_correlation_time`` (seconds,
        threshold 0.8; also ``_0.9``, ``_0.95``), ``metrics.relative_l2`` of the first step,
        the mean correlation per step, the error spectrum over the first ``spectrum_steps``
        steps, and for a stochastic model the sample spread against the actual error."""
        device = torch.device(device)
        model = model.to(device).eval()
        started = time.perf_counter()
        batches, out = self._full_rollouts(model, dataset, device)
        seconds = time.perf_counter() - started
        pred, truth, corr, times = out["pred"], out["truth"], out["correlation"], out["times"]
        rel = (pred[:, 0] - truth[:, 0]).norm(dim=-1) / truth[:, 0].norm(dim=-1)
        steps = min(self.spectrum_steps, truth.shape[1])
        err_spec, sig_spec = error_spectrum(pred[:, :steps].double(), truth[:, :steps].double())
        metrics = {
            "high_correlation_time": times[0.8],
            "high_correlation_time_0.9": times[0.9],
            "high_correlation_time_0.95": times[0.95],
            "relative_l2": float(rel.mean()),
            "relative_l2_std": float(rel.std()) if len(rel) > 1 else 0.0,
            "mse": float((pred[:, 0] - truth[:, 0]).square().mean()),
            "trajectories": int(pred.shape[0]),
            "rollout_steps": int(pred.shape[1]),
            "step_seconds": batches.step_seconds,
            "seconds_per_trajectory": seconds / pred.shape[0],
        }
        result: dict[str, Any] = {
            "metrics": metrics,
            "correlation": [float(c) for c in corr.mean(0)],
            "per_trajectory_high_correlation_time": [
                float((c > 0.8).sum()) * batches.step_seconds for c in corr],
            "error_spectrum": {"steps": steps, "error": err_spec.tolist(), "signal": sig_spec.tolist()},
        }
        if hasattr(_core(model), "refinement_steps") and self.spread_samples > 1:
            result["spread"] = self._spread(model, batches, device)
            metrics["spread_error_correlation"] = result["spread"]["spread_error_correlation"]
        return result

    def _spread(self, model, batches: TrajectoryBatches, device) -> dict[str, Any]:
        """Rollouts from ``spread_samples`` noise draws: spread against error per step."""
        n = min(self.spread_trajectories, len(batches))
        u0, truth = batches.initial_windows()[:n].to(device), batches.targets()[:n].to(device)
        scalars = batches.scalars[:n].to(device)
        samples = torch.stack([
            rollout(model, u0, scalars, truth.shape[1],
                    generator=torch.Generator(device=device).manual_seed(1000 + s), batch_size=128)
            for s in range(self.spread_samples)])
        spread, error = spread_and_error(samples.double(), truth.double())
        # correlation of log spread and log error over (trajectory, step) while both are informative
        mask = (error > 0) & (spread > 0)
        x, y = spread[mask].log(), error[mask].log()
        r = float(((x - x.mean()) * (y - y.mean())).sum() / (x.std() * y.std() * (len(x) - 1)))
        return {"samples": self.spread_samples, "trajectories": n,
                "spread": [float(v) for v in spread.mean(0)], "error": [float(v) for v in error.mean(0)],
                "spread_error_correlation": r if math.isfinite(r) else None}

    def summary(self, result: dict) -> str:
        m = result["metrics"]
        line = (f"high-correlation time {m['high_correlation_time']:.4g} s (0.9: "
                f"{m['high_correlation_time_0.9']:.4g} s, 0.95: {m['high_correlation_time_0.95']:.4g} s) "
                f"over {m['trajectories']} trajectories of {m['rollout_steps']} steps; first-step "
                f"relative L2 {m['relative_l2']:.3g}")
        if m.get("spread_error_correlation") is not None:
            line += f"; spread-error correlation {m['spread_error_correlation']:.2f}"
        return line

    def plot(self, model, dataset, path: str | os.PathLike, *, device="cpu", metadata=None) -> Path | None:
        """Correlation against time, and a space-time plot of truth, prediction and error of the
        first test trajectory."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        device = torch.device(device)
        model = model.to(device).eval()
        batches, out = self._full_rollouts(model, dataset, device)
        corr = out["correlation"].mean(0).cpu()
        t = batches.step_seconds * np.arange(1, len(corr) + 1)
        fig, axes = plt.subplots(1, 4, figsize=(17, 3.6))
        axes[0].plot(t, corr.numpy())
        axes[0].axhline(0.8, color="k", ls="--", lw=0.8)
        axes[0].set(xlabel="time [s]", ylabel="mean Pearson correlation", ylim=(-0.2, 1.02),
                    title=f"high-corr. time {out['times'][0.8]:.3g} s")
        truth, pred = out["truth"][0].cpu().numpy(), out["pred"][0].cpu().numpy()
        limit = float(np.abs(truth).max())
        for ax, panel, title in ((axes[1], truth, "truth"), (axes[2], pred, "prediction"),
                                 (axes[3], pred - truth, "error")):
            image = ax.imshow(panel.T, aspect="auto", origin="lower", cmap="RdBu_r", vmin=-limit, vmax=limit,
                              extent=(t[0], t[-1], 0, 1))
            ax.set(xlabel="time [s]", ylabel="x / L", title=f"trajectory 0: {title}")
        fig.colorbar(image, ax=axes[1:].tolist(), shrink=0.8)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(fig)
        return path


def plot_rollout_comparison(reports: dict[str, dict], path: str | os.PathLike, *,
                            title: str | None = None) -> Path:
    """Compare :meth:`RefinerTask.report` results of several models: mean correlation against
    time (PDE-Refiner, Figure 3), the error spectrum against the signal's (Figure 2), and the
    spread of stochastic models against their error (section 4.4)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4))
    for i, (name, report) in enumerate(reports.items()):
        m = report["metrics"]
        corr = np.asarray(report["correlation"])
        t = m["step_seconds"] * np.arange(1, len(corr) + 1)
        axes[0].plot(t, corr, color=f"C{i}", label=f"{name}: {m['high_correlation_time']:.1f} s")
        spectrum = report["error_spectrum"]
        axes[1].semilogy(spectrum["error"], color=f"C{i}", label=f"{name} error")
        if i == 0:
            axes[1].semilogy(spectrum["signal"], "k--", lw=0.8, label="ground truth")
        if "spread" in report:
            sp = report["spread"]
            ts = m["step_seconds"] * np.arange(1, len(sp["spread"]) + 1)
            axes[2].semilogy(ts, sp["error"], color=f"C{i}", label=f"{name} error")
            axes[2].semilogy(ts, sp["spread"], color=f"C{i}", ls=":", label=f"{name} sample spread")
    axes[0].axhline(0.8, color="k", ls="--", lw=0.8)
    axes[0].set(xlabel="time [s]", ylabel="mean Pearson correlation", ylim=(-0.1, 1.02),
                title="correlation over the test set")
    steps = next(iter(reports.values()))["error_spectrum"]["steps"]
    axes[1].set(xlabel="wavenumber (units of 2 pi / L)", ylabel="power",
                title=f"error spectrum, first {steps} steps")
    axes[2].set(xlabel="time [s]", ylabel="RMS", title="refiner: sample spread vs error")
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    return save_figure(fig, path, title=title or None, dpi=110)


@register_task("onestep")
class OneStepTask(RefinerTask):
    """The same pipeline for the MSE-trained one-step baseline (no spread study: it is
    deterministic)."""
