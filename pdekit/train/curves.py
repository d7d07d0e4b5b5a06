"""Learning curves of training runs: what ``pdekit plot RUN [RUN ...]`` draws.

A run folder written by the :class:`~pdekit.train.Trainer` holds ``metrics.jsonl`` (one JSON
line per epoch: ``train_loss``, ``lr``, ``seconds`` and, on evaluated epochs, the ``test_*``
metrics) and ``recipe.json`` (whose task names the metric that picks ``best.pt``).
:func:`plot_learning_curves` draws the training loss and that test metric against the epoch
for one or several runs, so runs of different models or budgets can be compared at a glance.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

__all__ = ["is_run_folder", "plot_learning_curves", "read_metrics", "selected_metric"]


def is_run_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a training run folder (it holds ``metrics.jsonl``)."""
    return (Path(path) / "metrics.jsonl").is_file()


def read_metrics(run: str | os.PathLike) -> list[dict]:
    """The per-epoch records of a run folder's ``metrics.jsonl``, in order.

    Raises
    ------
    FileNotFoundError
        If ``run`` has no ``metrics.jsonl``.
    """
    path = Path(run) / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{str(run)!r} is not a training run folder (no metrics.jsonl)")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def selected_metric(run: str | os.PathLike, records: Sequence[dict] | None = None) -> tuple[str | None, bool]:
    """The test metric that chooses the run's ``best.pt`` and whether bigger is better (its
    task's ``select`` and ``maximize``); without a readable ``recipe.json``, the first
    ``test_*`` key of its records, smaller being better (None when nothing was evaluated)."""
    from pdekit.train.task import build_task

    recipe = Path(run) / "recipe.json"
    if recipe.is_file():
        try:
            task = build_task(json.loads(recipe.read_text()).get("task"))
            return task.select, bool(task.maximize)
        except (ValueError, TypeError, KeyError):
            pass
    for record in records if records is not None else read_metrics(run):
        keys = [k for k in record if k.startswith("test_") and not k.endswith("_std")]
        if keys:
            return keys[0], False
    return None, False


def plot_learning_curves(runs: Sequence[str | os.PathLike], path: str | os.PathLike, *,
                         labels: Sequence[str] | None = None, metric: str | None = None,
                         title: str | None = None) -> Path:
    """Training loss and test metric against the epoch for each run, on log scales.

    Parameters
    ----------
    runs : sequence of path
        Run folders (``metrics.jsonl`` inside).
    path : path
        The PNG written.
    labels : sequence of str, optional
        One legend entry per run (default: the folder names).
    metric : str, optional
        The test metric drawn (default: the first run's :func:`selected_metric`); the best
        value of each run (the smallest, or the largest for the metric its task maximises)
        is marked and given in the legend.
    title : str, optional
        Figure title.

    Returns
    -------
    Path
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pdekit.train.evaluate import save_figure

    runs = [Path(run) for run in runs]
    if not runs:
        raise ValueError("plot_learning_curves: no run given")
    labels = [run.name for run in runs] if labels is None else list(labels)
    if len(labels) != len(runs):
        raise ValueError(f"plot_learning_curves: {len(labels)} labels for {len(runs)} runs")
    histories = [read_metrics(run) for run in runs]
    selected, maximize = selected_metric(runs[0], histories[0])
    if metric is None:
        metric = selected
    elif metric != selected:
        maximize = False
    fig, (ax_loss, ax_test) = plt.subplots(1, 2, figsize=(11, 4))
    for label, records in zip(labels, histories, strict=True):
        epochs = [r["epoch"] for r in records if "train_loss" in r]
        (line,) = ax_loss.plot(epochs, [r["train_loss"] for r in records if "train_loss" in r],
                               label=label, lw=1.2)
        tested = [(r["epoch"], r[metric]) for r in records if metric is not None and metric in r]
        if not tested:
            continue
        best = (max if maximize else min)(tested, key=lambda pair: pair[1])
        ax_test.plot(*zip(*tested, strict=True), "o-", color=line.get_color(), ms=3, lw=1.2,
                     label=f"{label}: best {best[1]:.4g} (epoch {best[0]}), last {tested[-1][1]:.4g}")
        ax_test.plot(*best, "*", color=line.get_color(), ms=11)
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="training loss")
    ax_test.set(xlabel="epoch", ylabel=metric or "test metric", title=f"test: {metric}")
    for ax in (ax_loss, ax_test):  # log scale where every value drawn is positive
        values = [y for line in ax.get_lines() for y in line.get_ydata()]
        if values and min(values) > 0:
            ax.set_yscale("log")
    for ax in (ax_loss, ax_test):
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    return save_figure(fig, path, title=title)
