"""Autoregressive rollouts of one-step models and the metrics of PDE-Refiner's evaluation.

Lippe et al., "PDE-Refiner" (NeurIPS 2023), section 4.1: a model is rolled out from the first
test frame over the whole trajectory; at each step the Pearson correlation over space between
prediction and truth is computed per trajectory and averaged over the test set; the
*high-correlation time* is the number of steps whose mean correlation exceeds a threshold (0.8;
also 0.9, 0.95), times the model's time step (as in PDEArena, which counts the steps above the
threshold rather than the first crossing). Averaging per-trajectory times instead gives other
numbers.
"""

from __future__ import annotations

import torch

__all__ = [
    "error_spectrum",
    "high_correlation_time",
    "pearson_correlation",
    "rollout",
    "rollout_frames",
    "spread_and_error",
]


@torch.no_grad()
def rollout(model, u0: torch.Tensor, scalars: torch.Tensor | None, steps: int, *,
            generator: torch.Generator | None = None, batch_size: int | None = None) -> torch.Tensor:
    """Roll ``model`` out for ``steps`` steps from the states ``u0``.

    Parameters
    ----------
    model : callable
        ``model(u (B, history, N), scalars, generator=...) -> (B, 1, N)`` (PDERefiner, OneStepUNet).
    u0 : Tensor, shape (B, history, N)
        The initial window.
    scalars : Tensor, shape (B, S), or None
    steps : int
        Number of model steps.
    generator : torch.Generator, optional
        The noise of a stochastic model (e.g. one sample of PDE-Refiner per generator seed).
    batch_size : int, optional
        Trajectories per model call (default: all).

    Returns
    -------
    Tensor, shape (B, steps, N): the predicted states after 1 .. ``steps`` steps.
    """
    chunks = []
    size = batch_size or u0.shape[0]
    for start in range(0, u0.shape[0], size):
        cond = None if scalars is None else scalars[start : start + size]
        chunks.append(rollout_frames(lambda window, cond=cond: model(window, cond, generator=generator),
                                     u0[start : start + size], steps))
    return torch.cat(chunks)


def rollout_frames(model, x: torch.Tensor, steps: int) -> torch.Tensor:
    """Roll ``model`` out from the frames ``x`` (B, history, *grid) until ``steps`` frames are
    predicted; each call's ``k`` output frames are appended to the window (the oldest ``k``
    dropped). Returns (B, steps, *grid). Gradients flow through the rollout unless the caller
    disables them (training through the rollout: the ``frame-rollout`` task)."""
    history, predicted, window = x.shape[1], [], x
    count = 0
    while count < steps:
        out = model(window)
        if out.shape[0] != x.shape[0] or out.shape[2:] != x.shape[2:] or out.shape[1] < 1:
            raise ValueError(f"rollout_frames: the model maps {tuple(window.shape)} to {tuple(out.shape)}; "
                             f"it must return (B, k, *grid) frames")
        predicted.append(out)
        count += out.shape[1]
        window = torch.cat([window, out.to(window.dtype)], dim=1)[:, -history:]
    return torch.cat(predicted, dim=1)[:, :steps]


def pearson_correlation(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Pearson correlation over the last (spatial) axis: ``(..., N), (..., N) -> (...)``."""
    p = pred - pred.mean(-1, keepdim=True)
    t = target - target.mean(-1, keepdim=True)
    return (p * t).sum(-1) / (p.norm(dim=-1) * t.norm(dim=-1) + eps)


def high_correlation_time(correlation: torch.Tensor, step_seconds: float,
                          thresholds: tuple[float, ...] = (0.8, 0.9, 0.95)) -> dict[float, float]:
    """Seconds of high correlation: ``step_seconds`` times the number of steps whose mean
    correlation (``correlation`` of shape ``(B, steps)``, averaged over ``B`` first) exceeds
    each threshold."""
    mean = correlation.mean(0) if correlation.ndim == 2 else correlation
    return {t: float((mean > t).sum()) * step_seconds for t in thresholds}


def error_spectrum(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frequency squared error and signal: ``mean |FFT(pred - target)|^2`` and
    ``mean |FFT(target)|^2`` over every leading axis, at the real-FFT wavenumbers ``0 .. N/2``
    (PDE-Refiner, Figure 2: MSE-trained models neglect the low-amplitude high frequencies)."""
    n = pred.shape[-1]
    error = torch.fft.rfft(pred - target, dim=-1).abs().square() / n
    signal = torch.fft.rfft(target, dim=-1).abs().square() / n
    dims = tuple(range(pred.ndim - 1))
    return error.mean(dims), signal.mean(dims)


def spread_and_error(samples: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample spread and actual error of an ensemble of rollouts (PDE-Refiner, section 4.4).

    ``samples (S, B, steps, N)`` rollouts from different noise draws, ``target (B, steps, N)``;
    returns the spread (RMS over space of the across-sample standard deviation) and the error
    (RMS over space of the sample-mean error), both ``(B, steps)``.
    """
    spread = samples.std(0).square().mean(-1).sqrt()
    error = (samples.mean(0) - target).square().mean(-1).sqrt()
    return spread, error
