"""Building blocks shared by the models: MLPs, activations, initialisation, 3D convolution."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["ACTIVATIONS", "MLP", "VolumeConv3d", "activation", "glorot_normal_"]


class SinTanhResidual(nn.Module):
    """``tanh(sin(pi (x + 1))) + x``, the MultiONet trunk activation (Zang & Koutsourelakis 2025)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(torch.sin(math.pi * (x + 1))) + x


class SiLUResidual(nn.Module):
    """``silu(x) + x``, the MultiONet branch activation."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.silu(x) + x


ACTIVATIONS = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "sin_tanh_residual": SinTanhResidual,
    "silu_residual": SiLUResidual,
}


def activation(name: str) -> nn.Module:
    """A fresh activation module by name (one of ``ACTIVATIONS``)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; available: {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def glorot_normal_(layer: nn.Module) -> None:
    """Glorot-normal weights and zero biases (the DeepONet convention)."""
    if isinstance(layer, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        nn.init.xavier_normal_(layer.weight)
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)


class MLP(nn.Module):
    """A fully connected network ``widths[0] -> ... -> widths[-1]``.

    Parameters
    ----------
    widths : sequence of int
        Layer widths, input first.
    activation : str
        Name of the hidden activation (see ``ACTIVATIONS``).
    activate_last : bool
        Apply the activation after the last layer too (DeepONet's trunk convention).

    Shapes:
        ``(..., widths[0]) -> (..., widths[-1])``; :meth:`hidden_states` returns every
        layer's activated output.
    """

    def __init__(self, widths: Sequence[int], activation: str = "relu", activate_last: bool = False):
        super().__init__()
        if len(widths) < 2 or any(int(w) < 1 for w in widths):
            raise ValueError(f"MLP: `widths` must be at least two positive sizes, got {list(widths)}")
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(widths))
        self.activations = nn.ModuleList(
            globals()["activation"](activation) for _ in range(len(self.layers))
        )
        self.activate_last = activate_last
        self.apply(glorot_normal_)

    def hidden_states(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Outputs of every layer (activated, except the last unless ``activate_last``)."""
        states = []
        last = len(self.layers) - 1
        for i, (layer, act) in enumerate(zip(self.layers, self.activations, strict=True)):
            x = layer(x)
            if i < last or self.activate_last:
                x = act(x)
            states.append(x)
        return states

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.hidden_states(x)[-1]


class VolumeConv3d(nn.Conv3d):
    """:class:`torch.nn.Conv3d` that always takes oneDNN on the CPU for float32 batches.

    PyTorch sends a CPU float32 3D convolution to oneDNN only when the batch is larger than one
    or ``batch * channels * depth * height`` exceeds 20,480; otherwise it takes its generic
    im2col path. That rule suits small 2D images, but a single 16-channel 32^3 volume, what a
    learned preconditioner applies on 32^3 grids and on the coarse level of 64^3 ones, falls
    under it, and the generic path is about 10x slower there (67 ms against 6 ms for a 16 ->
    16 channel 3x3x3 convolution, one thread, AMD EPYC). This layer calls the oneDNN
    convolution directly in that case (same result to rounding, gradients included);
    elsewhere (CUDA, other dtypes, unbatched input, padding modes other than zeros, or
    ``torch.backends.mkldnn`` disabled) it is :class:`torch.nn.Conv3d`. The parameters and the
    state dict are those of :class:`torch.nn.Conv3d`.
    """

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor,
                      bias: torch.Tensor | None) -> torch.Tensor:
        if (input.device.type == "cpu" and input.dim() == 5 and input.dtype == weight.dtype == torch.float32
                and self.padding_mode == "zeros" and not isinstance(self.padding, str)
                and torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled):
            return torch.ops.aten.mkldnn_convolution(input.contiguous(), weight, bias, list(self.padding),
                                                     list(self.stride), list(self.dilation), self.groups)
        return super()._conv_forward(input, weight, bias)
