"""Building blocks shared by the models: MLPs, activations, initialisation."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["ACTIVATIONS", "MLP", "activation", "glorot_normal_"]


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
