"""Evaluation of a trained field-to-field model on a dataset: the one evaluate of pdekit.

:func:`per_sample_metrics` runs the model over a dataset's pairs and returns each metric per
sample (the Trainer calls it every epoch); :func:`evaluate` summarises it into the JSON that
``pdekit evaluate`` writes, ``{"metrics": {"relative_l2": mean, ...}, "per_sample": [...]}``,
:func:`plot_predictions` draws prediction, truth and error for a few samples, and
:func:`paired_comparison` compares two models' per-sample errors on the same test samples.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from pdekit.data.dataset import SampleSubset
from pdekit.train import metrics as M
from pdekit.train.batches import FieldBatches

__all__ = ["evaluate", "paired_comparison", "per_sample_metrics", "plot_predictions", "save_figure"]

ALL_METRICS = ("relative_l2", "mse", "rmse", "nrmse", "max_error", "boundary_rmse",
               "conserved_quantity_error", "vrmse", "frequency_band_rmse")


def per_sample_metrics(model: torch.nn.Module, batches: FieldBatches, *, device: str | torch.device = "cpu",
                       names: Sequence[str] = ALL_METRICS, batch_size: int = 64,
                       autocast: bool = False) -> dict[str, torch.Tensor]:
    """Each metric in ``names`` for every sample of ``batches`` (float32 predictions);
    ``frequency_band_rmse`` gives ``frequency_rmse_low``, ``_mid`` and ``_high``."""
    device = torch.device(device)
    unknown = [n for n in names if n not in ALL_METRICS]
    if unknown:
        raise ValueError(f"per_sample_metrics: unknown metric {unknown[0]!r}; available: {ALL_METRICS}")
    model.eval()
    values: dict[str, list[torch.Tensor]] = {}
    with torch.no_grad():
        for x, y in batches.batches(batch_size):
            x, y = x.to(device), y.to(device)
            use_amp = autocast and device.type == "cuda"
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                pred = model(x)
            pred = pred.float()
            for name in names:
                result = getattr(M, name)(pred, y)
                parts = ({f"frequency_rmse_{band}": v for band, v in result.items()}
                         if isinstance(result, dict) else {name: result})
                for key, v in parts.items():
                    values.setdefault(key, []).append(v.cpu())
    return {key: torch.cat(v) for key, v in values.items()}


def evaluate(model: torch.nn.Module, dataset, *, inputs: Sequence[str], outputs: Sequence[str],
             device: str | torch.device = "cpu", batch_size: int = 64) -> dict:
    """Evaluate ``model`` on ``dataset``.

    Returns
    -------
    dict
        ``{"metrics": {"relative_l2": mean, "relative_l2_std", "relative_l2_median", every other
        metric's mean, "samples", "seconds_per_sample"}, "per_sample": [relative L2 of each
        sample]}``.
    """
    device = torch.device(device)
    model = model.to(device)
    batches = FieldBatches(dataset, inputs, outputs)
    started = time.perf_counter()
    values = per_sample_metrics(model, batches, device=device, batch_size=batch_size)
    seconds = time.perf_counter() - started
    rel = values["relative_l2"]
    summary = {"relative_l2": float(rel.mean()), "relative_l2_std": float(rel.std()) if len(rel) > 1 else 0.0,
               "relative_l2_median": float(rel.median())}
    summary.update({k: float(v.mean()) for k, v in values.items() if k != "relative_l2"})
    summary.update({"samples": len(rel), "seconds_per_sample": seconds / len(rel)})
    return {"metrics": summary, "per_sample": [float(v) for v in rel]}


def paired_comparison(ours: Sequence[float], theirs: Sequence[float]) -> dict[str, float]:
    """Paired comparison of two models' errors on the same samples (e.g. the ``per_sample``
    relative L2 of two :func:`evaluate` results on one test split).

    Two models evaluated on the same samples share each sample's difficulty; the per-sample
    difference ``d_i = ours_i - theirs_i`` removes it, so the standard error of its mean,
    ``std(d) / sqrt(n)``, is usually far smaller than the spread of either error.

    Parameters
    ----------
    ours, theirs : sequence of float
        Errors of the two models, sample by sample, in the same order.

    Returns
    -------
    dict
        ``samples``; ``mean_difference`` (``mean(d)``, negative when ours is lower);
        ``standard_error`` (of that mean, ``ddof = 1``); ``lower_fraction`` (share of samples
        where ours is lower); ``ratio`` (``mean(ours) / mean(theirs)``).

    Raises
    ------
    ValueError
        If the two are of different lengths or have fewer than two samples.
    """
    a = torch.as_tensor(list(ours), dtype=torch.float64)
    b = torch.as_tensor(list(theirs), dtype=torch.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"paired_comparison: `ours` and `theirs` need the same samples, got "
                         f"{tuple(a.shape)} and {tuple(b.shape)} values")
    if len(a) < 2:
        raise ValueError(f"paired_comparison: need at least two samples, got {len(a)}")
    d = a - b
    return {"samples": len(d), "mean_difference": float(d.mean()),
            "standard_error": float(d.std() / len(d) ** 0.5),
            "lower_fraction": float((d < 0).double().mean()), "ratio": float(a.mean() / b.mean())}


def plot_predictions(model: torch.nn.Module, dataset, path: str | os.PathLike, *, inputs: Sequence[str],
                     outputs: Sequence[str], samples: Sequence[int] = (0, 1, 2),
                     device: str | torch.device = "cpu") -> Path:
    """A PNG with, for each sample: the first input field, the truth, the prediction and the
    error of the first output field (images for 2D fields, curves for 1D)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    batches = FieldBatches(SampleSubset(dataset, samples), inputs, outputs)
    model = model.to(device).eval()
    with torch.no_grad():
        pred = model(batches.x.to(device)).float().cpu()
    x, y = batches.x, batches.y
    fig, axes = plt.subplots(len(samples), 4, figsize=(14, 3.2 * len(samples)), squeeze=False)
    titles = (f"input {inputs[0]}", f"truth {outputs[0]}", f"prediction {outputs[0]}", "error")
    for row, k in enumerate(samples):
        panels = (x[row, 0], y[row, 0], pred[row, 0], pred[row, 0] - y[row, 0])
        rel = float(M.relative_l2(pred[row:row + 1], y[row:row + 1])[0])
        for col, (ax, panel) in enumerate(zip(axes[row], panels, strict=True)):
            if panel.ndim == 1:
                ax.plot(panel.numpy())
                if col == 2:  # the truth under the prediction, dashed
                    ax.plot(y[row, 0].numpy(), "k--", lw=0.8)
            else:
                limit = float(panel.abs().max()) if col == 3 else None  # errors: symmetric about 0
                image = ax.imshow(panel.numpy().T, origin="lower", cmap="RdBu_r" if col == 3 else "viridis",
                                  vmin=-limit if limit else None, vmax=limit)
                fig.colorbar(image, ax=ax, shrink=0.8)
            ax.set_title(f"sample {k}: {titles[col]}" + (f" (rel. L2 {rel:.2e})" if col == 3 else ""),
                         fontsize=9)
    return save_figure(fig, path, dpi=100)


def save_figure(fig, path: str | os.PathLike, title: str | None = None, dpi: int = 120) -> Path:
    """Give ``fig`` its title, lay it out, write it to ``path`` (folders created), close it."""
    import matplotlib.pyplot as plt

    if title is not None:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
