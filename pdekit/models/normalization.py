"""Gaussian normalisation of a field-to-field model's inputs and outputs, kept in the model.

``NormalizedModel(model, ...)`` computes ``model((x - mu_x) / sigma_x) * sigma_y + mu_y``, so
losses are taken on de-normalised outputs (as in the FNO and LSM papers) and a loaded
checkpoint predicts physical fields directly. The statistics are buffers (saved, moved with
``.to()``), per grid point (``(C, *grid)``) or per field (``(C, 1, ..., 1)``). Per-point
statistics are resampled (linear interpolation between nodes spanning the same domain,
``align_corners=True``) when the input's grid differs from the training grid, so that a
checkpoint runs at any resolution its model accepts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["NormalizedModel"]


class NormalizedModel(nn.Module):
    """Wrap ``model`` with input and output Gaussian normalisation.

    Parameters
    ----------
    model : nn.Module
        A registered pdekit model taking ``(B, C_in, *grid)`` to ``(B, C_out, *grid)``.
    input_mean, input_std, output_mean, output_std : torch.Tensor
        Statistics broadcastable against ``(C, *grid)``; standard deviations are clamped
        below at ``eps``.

    Shapes:
        ``(B, C_in, *grid) -> (B, C_out, *grid)``
    """

    def __init__(self, model: nn.Module, input_mean: torch.Tensor, input_std: torch.Tensor,
                 output_mean: torch.Tensor, output_std: torch.Tensor, eps: float = 1e-6):
        super().__init__()
        self.model = model
        self.register_buffer("input_mean", torch.as_tensor(input_mean, dtype=torch.float32).clone())
        self.register_buffer("input_std", torch.as_tensor(input_std, dtype=torch.float32).clamp_min(eps))
        self.register_buffer("output_mean", torch.as_tensor(output_mean, dtype=torch.float32).clone())
        self.register_buffer("output_std", torch.as_tensor(output_std, dtype=torch.float32).clamp_min(eps))

    def statistics(self) -> dict[str, torch.Tensor]:
        """The four statistics tensors (what a checkpoint stores)."""
        return {name: getattr(self, name).detach().cpu()
                for name in ("input_mean", "input_std", "output_mean", "output_std")}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grid = tuple(x.shape[2:])
        x = (x - _on_grid(self.input_mean, grid)) / _on_grid(self.input_std, grid)
        y = self.model(x)
        grid = tuple(y.shape[2:])
        return y * _on_grid(self.output_std, grid) + _on_grid(self.output_mean, grid)


def _on_grid(stat: torch.Tensor, grid: tuple[int, ...]) -> torch.Tensor:
    """Per-point statistics ``(C, *train_grid)`` resampled to ``grid`` (nodes spanning the same
    domain); per-field statistics and matching grids are returned as they are."""
    own = tuple(stat.shape[1:])
    if own == grid or len(own) != len(grid) or len(grid) not in (1, 2, 3) or all(s == 1 for s in own):
        return stat
    mode = ("linear", "bilinear", "trilinear")[len(grid) - 1]
    return F.interpolate(stat[None], size=grid, mode=mode, align_corners=True)[0]
