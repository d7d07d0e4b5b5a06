"""Autoregressive frame-window training: the FNO / LSM Navier-Stokes protocol.

Li et al., "Fourier neural operator for parametric PDEs" (ICLR 2021), section 5.3, and Wu et
al., "Solving high-dimensional PDEs with latent spectral models" (ICML 2023), section 4.1: a
model sees the last ``history`` frames of a trajectory as channels, ``(B, history, *grid)``,
and predicts the next ``k`` frames, ``(B, k, *grid)`` (``k = 1`` in both papers); it is rolled
out, its own predictions appended to the window, until ``steps`` frames are predicted. Training
back-propagates through the whole rollout; the loss of a window is the mean over the predicted
frames of each frame's relative L2 (the papers sum over the model calls; with one frame per
call the mean only rescales it; the recipe's ``loss = "mse"`` takes each frame's MSE instead).
The reported error is the relative L2 over all ``steps`` predicted frames of a window together
(the papers' "full" error), mean over the test windows.

A window is ``history + steps`` consecutive stored frames of a trajectory field with dims
``("t", *space)``, starting at frame ``first`` (the FNO data: frames ``t = 1 .. 20`` of
``datasets/navier-stokes2d-fno.toml``, which also stores ``t = 0``, so ``first = 1``), or at
every ``every``-th frame from ``first`` on (several windows per trajectory).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pdekit.models.normalization import NormalizedModel
from pdekit.train.evaluate import save_figure
from pdekit.train.metrics import mse, relative_l2
from pdekit.train.rollout import rollout_frames
from pdekit.train.task import Task, register_task

__all__ = ["FrameRolloutTask", "FrameWindows"]


class FrameWindows:
    """``(x (B, history, *grid), y (B, steps, *grid))`` windows cut from trajectories.

    Parameters
    ----------
    dataset : pdekit dataset
        Items ``{field: (T, *grid)}``.
    field : str
        The trajectory field.
    history, steps : int
        Frames the model sees, and frames to predict after them.
    first : int
        First frame of the (first) window.
    every : int
        0: one window per trajectory, at ``first``; else windows at ``first, first + every, ...``
        while they fit.
    """

    def __init__(self, dataset, *, field: str = "w", history: int = 10, steps: int = 10, first: int = 0,
                 every: int = 0, dtype: torch.dtype = torch.float32):
        if len(dataset) == 0:
            raise ValueError("FrameWindows: the dataset is empty")
        if history < 1 or steps < 1 or first < 0 or every < 0:
            raise ValueError("FrameWindows: need history >= 1, steps >= 1, first >= 0 and every >= 0")
        self.field, self.history, self.steps = field, history, steps
        item = dataset[0]
        if field not in item:
            raise KeyError(f"FrameWindows: the dataset has no field {field!r}; it has {sorted(item)}")
        self.u = torch.stack([dataset[i][field] for i in range(len(dataset))]).to(dtype)
        if self.u.ndim < 3:
            raise ValueError(f"FrameWindows: field {field!r} must be (t, *space) per sample, "
                             f"got {tuple(self.u.shape[1:])}")
        frames, span = self.u.shape[1], history + steps
        if first + span > frames:
            raise ValueError(f"FrameWindows: trajectories of {frames} frames hold no window of "
                             f"{history} + {steps} frames from frame {first}")
        starts = [first] if every == 0 else list(range(first, frames - span + 1, every))
        self.index = torch.tensor([(s, t) for s in range(len(self.u)) for t in starts], dtype=torch.long)

    def __len__(self) -> int:
        return len(self.index)

    def window(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Input frames and the frames after them of the windows ``index``."""
        sample, start = self.index[index, 0], self.index[index, 1]
        frames = start[:, None] + torch.arange(self.history + self.steps)
        w = self.u[sample[:, None], frames]
        return w[:, : self.history], w[:, self.history :]

    def batches(self, batch_size: int, order: torch.Tensor | None = None, rank: int = 0,
                world: int = 1) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.arange(len(self)) if order is None else order
        for i in range(0, len(order), batch_size):
            index = order[i : i + batch_size]
            if len(index) < world:  # every process takes a share of every batch, or none takes it
                continue
            yield self.window(index[rank::world])

    def persistence(self) -> torch.Tensor:
        """Relative L2 of the persistence forecast (every predicted frame equal to the last input
        frame) per window: the baseline a model must beat."""
        x, y = self.window(torch.arange(len(self)))
        return relative_l2(x[:, -1:].expand_as(y), y)


def _per_frame(error, pred: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """``error`` (a per-sample metric) of every frame: (B, frames) from (B, frames, *grid)."""
    return torch.stack([error(pred[:, i], truth[:, i]) for i in range(truth.shape[1])], dim=1)


@register_task("frame-rollout")
class FrameRolloutTask(Task):
    """Autoregressive frame-window training and evaluation (see the module docstring).

    Parameters
    ----------
    field : str
        The trajectory field of the dataset (``"w"``: vorticity).
    history : int
        Frames the model sees (its ``in_channels``).
    steps : int
        Frames predicted per window (a model returning ``k`` frames per call is called
        ``ceil(steps / k)`` times; frames past ``steps`` are dropped).
    first, every : int
        Where windows start (:class:`FrameWindows`).
    """

    def __init__(self, field: str = "w", history: int = 10, steps: int = 10, first: int = 0, every: int = 0):
        if history < 1 or steps < 1:
            raise ValueError("FrameRolloutTask: `history` and `steps` must be >= 1")
        self.field, self.history, self.steps, self.first, self.every = field, history, steps, first, every

    # -- training ----------------------------------------------------------------------------
    def make_batches(self, dataset, *, inputs=None, outputs=None, settings=None) -> FrameWindows:
        return FrameWindows(dataset, field=self.field, history=self.history, steps=self.steps,
                            first=self.first, every=self.every)

    def wrap_model(self, model, batches: FrameWindows, dataset, settings):
        """Gaussian normalisation of the one field, the same statistics for the input and the
        output frames (so that predictions can be fed back): per grid point (``pointwise``) or
        one mean and deviation (``field``) over every training frame; ``none``: the model as
        it is (the papers' choice on Navier-Stokes)."""
        if settings.normalization == "none":
            return model
        frames = batches.u.flatten(0, 1).double()
        if settings.normalization == "pointwise":
            mean, std = frames.mean(0, keepdim=True), frames.std(0, keepdim=True)
        else:
            mean = frames.mean().reshape((1,) * (frames.ndim))
            std = frames.std().reshape((1,) * (frames.ndim))
        return NormalizedModel(model, mean.float(), std.float(), mean.float(), std.float())

    def loss(self, model, batch, settings=None) -> torch.Tensor:
        x, y = batch
        pred = rollout_frames(model, x, self.steps).float()
        error = mse if getattr(settings, "loss", "relative_l2") == "mse" else relative_l2
        per_frame = _per_frame(error, pred, y)
        return per_frame.mean(dim=1)

    def _predict(self, model, batches: FrameWindows, device, *, amp: bool = False,
                 batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicted and true frames of every window of ``batches`` (no gradients)."""
        model.eval()
        preds, truths = [], []
        enabled = amp and torch.device(device).type == "cuda"
        kind = torch.device(device).type
        with torch.no_grad(), torch.autocast(kind, dtype=torch.bfloat16, enabled=enabled):
            for x, y in batches.batches(batch_size):
                preds.append(rollout_frames(model, x.to(device), self.steps).float().cpu())
                truths.append(y)
        return torch.cat(preds), torch.cat(truths)

    def evaluate(self, model, batches, *, device, settings=None) -> dict[str, float]:
        """The relative L2 over each window's predicted frames (mean and std over the windows),
        and the mean per-frame error (the papers' "step" error)."""
        amp = bool(getattr(settings, "amp", False))
        pred, truth = self._predict(model, batches, device, amp=amp)
        full = relative_l2(pred, truth)
        per_frame = _per_frame(relative_l2, pred, truth)
        return {"test_relative_l2": float(full.mean()),
                "test_relative_l2_std": float(full.std()) if len(full) > 1 else 0.0,
                "test_frame_relative_l2": float(per_frame.mean()),
                "test_last_frame_relative_l2": float(per_frame[:, -1].mean()),
                "test_mse": float((pred - truth).square().mean())}

    # -- after training: `pdekit evaluate` ----------------------------------------------------
    def _rollouts(self, model, dataset, device) -> tuple[FrameWindows, torch.Tensor, torch.Tensor, float]:
        """Every window of ``dataset`` rolled out, and the seconds it took (remembered for the
        same weights and dataset: ``pdekit evaluate`` calls :meth:`report` then :meth:`plot`)."""
        key = (id(model), id(dataset), str(device),
               tuple(float(p.detach().double().sum()) for p in list(model.parameters())[:3]))
        cached = getattr(self, "_cache", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        batches = self.make_batches(dataset)
        started = time.perf_counter()
        pred, truth = self._predict(model, batches, device)
        result = (batches, pred, truth, time.perf_counter() - started)
        self._cache = (key, result)
        return result

    def report(self, model, dataset, *, device="cpu", metadata=None) -> dict[str, Any]:
        """``metrics.relative_l2`` over each window's predicted frames (mean, std, median over the
        windows), the mean per-frame error, the persistence baseline's, and the error of every
        predicted frame (``per_frame``: mean over the windows)."""
        device = torch.device(device)
        model = model.to(device).eval()
        batches, pred, truth, seconds = self._rollouts(model, dataset, device)
        full = relative_l2(pred, truth)
        per_frame = _per_frame(relative_l2, pred, truth)
        persistence = batches.persistence()
        return {
            "metrics": {
                "relative_l2": float(full.mean()),
                "relative_l2_std": float(full.std()) if len(full) > 1 else 0.0,
                "relative_l2_median": float(full.median()),
                "frame_relative_l2": float(per_frame.mean()),
                "last_frame_relative_l2": float(per_frame[:, -1].mean()),
                "persistence_relative_l2": float(persistence.mean()),
                "mse": float((pred - truth).square().mean()),
                "windows": len(batches),
                "history": self.history,
                "steps": self.steps,
                "seconds_per_window": seconds / len(batches),
            },
            "per_frame": [float(v) for v in per_frame.mean(0)],
            "per_sample": [float(v) for v in full],  # one per window (`pdekit evaluate --against`)
        }

    def summary(self, result: dict) -> str:
        m = result["metrics"]
        return (f"relative L2 over {m['steps']} rolled-out frames {m['relative_l2']:.4g} +- "
                f"{m['relative_l2_std']:.2g} (median {m['relative_l2_median']:.4g}; last frame "
                f"{m['last_frame_relative_l2']:.3g}; persistence {m['persistence_relative_l2']:.3g}) over "
                f"{m['windows']} windows, {m['seconds_per_window'] * 1e3:.3g} ms per window")

    def plot(self, model, dataset, path: str | os.PathLike, *, device="cpu", metadata=None) -> Path | None:
        """The error of each predicted frame (mean over the windows, against persistence), and
        truth, prediction and error of the first window at three frames."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        device = torch.device(device)
        model = model.to(device).eval()
        batches, pred, truth, _ = self._rollouts(model, dataset, device)
        if pred.ndim != 4:
            return None
        per_frame = _per_frame(relative_l2, pred, truth)
        x, y = batches.window(torch.arange(len(batches)))
        persistence = _per_frame(relative_l2, x[:, -1:].expand_as(y), y)
        frames = sorted({0, self.steps // 2, self.steps - 1})
        fig = plt.figure(figsize=(4 + 3.2 * len(frames), 8.4))
        grid = fig.add_gridspec(3, 2 + len(frames), width_ratios=[1.4] + [1] * len(frames) + [0.06])
        ax = fig.add_subplot(grid[:, 0])
        k = np.arange(1, self.steps + 1)
        ax.plot(k, per_frame.mean(0).numpy(), "o-", label="model")
        ax.plot(k, persistence.mean(0).numpy(), "s--", color="gray", label="persistence")
        ax.set(xlabel="predicted frame", ylabel="relative L2 (mean over windows)",
               title=f"{len(batches)} windows, {self.history} frames in")
        ax.legend()
        limit = float(truth[0].abs().max())
        for j, f in enumerate(frames):
            for row, (panel, name) in enumerate(((truth[0, f], "truth"), (pred[0, f], "prediction"),
                                                 (pred[0, f] - truth[0, f], "error"))):
                axis = fig.add_subplot(grid[row, 1 + j])
                image = axis.imshow(panel.numpy().T, origin="lower", cmap="RdBu_r", vmin=-limit, vmax=limit)
                axis.set(xticks=[], yticks=[], title=f"frame {f + 1}: {name}")
        fig.colorbar(image, cax=fig.add_subplot(grid[:, -1]))
        return save_figure(fig, path, dpi=100)
