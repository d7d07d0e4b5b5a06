"""Fourier Neural Operator in 2D and 3D (Li et al., "Fourier Neural Operator for Parametric
Partial Differential Equations", ICLR 2021, arXiv 2010.08895).

Each Fourier layer is ``v -> sigma(W v + F^-1(R . F(v)))`` (their eq. 4-5): a pointwise linear
map plus a learned complex multiplication ``R`` on the lowest ``modes`` Fourier modes of every
axis (both signs of the frequency on every axis but the last, which is real-FFT halved). A
pointwise lift ``P`` (input channels -> width) comes first, a two-layer pointwise projection
``Q`` (width -> ``fc_dim`` -> output channels) last. Non-periodic inputs are zero-padded by
``padding`` points at the end of each axis and cropped after the Fourier layers, as in the
reference code.

:class:`FNO2d` and :class:`FNO3d` are registered (``"fno2d"``, ``"fno3d"``); they are the
backbone of the physics-informed hard-constraint models
(:mod:`pdekit.models.hard_constraint`) and a baseline for the other operators.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from pdekit.models.layers import activation
from pdekit.models.registry import register_model

__all__ = ["FNO2d", "FNO3d", "FourierNeuralOperator", "SpectralConv"]


class SpectralConv(nn.Module):
    """The Fourier integral operator ``F^-1(R . F(v))`` on the lowest modes (FNO eq. 5).

    Parameters
    ----------
    in_channels, out_channels : int
    modes : sequence of int
        Modes kept per axis (one entry per spatial axis: 2 for 2D, 3 for 3D).

    Shapes:
        ``(B, in_channels, *grid) -> (B, out_channels, *grid)``; every axis but the last needs
        ``grid[i] >= 2 modes[i]``, the last ``grid[-1] // 2 + 1 >= modes[-1]``.
    """

    def __init__(self, in_channels: int, out_channels: int, modes: Sequence[int]):
        super().__init__()
        self.modes = tuple(int(m) for m in modes)
        self.dim = len(self.modes)
        if self.dim not in (2, 3) or min(self.modes) < 1:
            raise ValueError(f"SpectralConv: `modes` must be 2 or 3 positive integers, got {modes}")
        self.out_channels = out_channels
        scale = 1.0 / (in_channels * out_channels)
        # one weight block per sign combination of the non-last axes
        blocks = 2 ** (self.dim - 1)
        self.weights = nn.Parameter(
            scale * torch.randn(blocks, in_channels, out_channels, *self.modes, 2)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grid = x.shape[2:]
        axes = tuple(range(-self.dim, 0))
        for n, m, i in zip(grid[:-1], self.modes[:-1], range(self.dim - 1), strict=True):
            if n < 2 * m:
                raise ValueError(f"SpectralConv: axis {i} has {n} points, fewer than 2 x modes = {2 * m}")
        if grid[-1] // 2 + 1 < self.modes[-1]:
            raise ValueError(f"SpectralConv: the last axis has {grid[-1]} points, too few for "
                             f"{self.modes[-1]} modes")
        dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        x_ft = torch.fft.rfftn(x.to(dtype), dim=axes)
        out = torch.zeros(x.shape[0], self.out_channels, *x_ft.shape[2:], dtype=x_ft.dtype, device=x.device)
        weights = torch.view_as_complex(self.weights.to(dtype))
        for block in range(weights.shape[0]):
            index = [slice(None), slice(None)]
            for axis in range(self.dim - 1):
                m = self.modes[axis]
                index.append(slice(-m, None) if (block >> axis) & 1 else slice(0, m))
            index.append(slice(0, self.modes[-1]))
            index = tuple(index)
            out[index] = torch.einsum("bi...,io...->bo...", x_ft[index], weights[block])
        return torch.fft.irfftn(out, s=grid, dim=axes).to(x.dtype)


class FourierNeuralOperator(nn.Module):
    """FNO on a 2D or 3D grid (Li et al. 2021, section 4).

    Parameters
    ----------
    in_channels, out_channels : int
        Input channels (including any grid coordinates the caller appends) and outputs.
    modes : sequence of int
        Fourier modes per axis.
    width : int
        Channels of the Fourier layers.
    layers : int
        Fourier layers.

    Other Parameters
    ----------------
    fc_dim : int
        Hidden channels of the projection.
    padding : int
        Zero padding at the end of every axis (0 for periodic problems).
    activation_name : str
        Nonlinearity (``gelu`` as in the reference).
    activate_last : bool
        Apply the nonlinearity after the last Fourier layer too (the hard-constraint models do).

    Shapes:
        ``(B, in_channels, *grid) -> (B, out_channels, *grid)``
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, modes: Sequence[int] = (8, 8),
                 width: int = 32, layers: int = 4, fc_dim: int = 128, padding: int = 0,
                 activation_name: str = "gelu", activate_last: bool = False):
        super().__init__()
        if layers < 1 or width < 1 or fc_dim < 1 or padding < 0:
            raise ValueError("FourierNeuralOperator: need layers, width, fc_dim >= 1 and padding >= 0")
        self.dim = len(tuple(modes))
        self.padding = int(padding)
        self.activate_last = activate_last
        self.lift = nn.Linear(in_channels, width)
        self.spectral = nn.ModuleList(SpectralConv(width, width, modes) for _ in range(layers))
        self.pointwise = nn.ModuleList(nn.Linear(width, width) for _ in range(layers))
        self.act = activation(activation_name)
        self.project = nn.Sequential(nn.Linear(width, fc_dim), activation(activation_name),
                                     nn.Linear(fc_dim, out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != self.dim + 2:
            raise ValueError(f"{type(self).__name__}: expected a (B, C, {self.dim} grid axes) input, "
                             f"got shape {tuple(x.shape)}")
        grid = x.shape[2:]
        h = self.lift(x.movedim(1, -1)).movedim(-1, 1)
        if self.padding:
            h = nn.functional.pad(h, [0, self.padding] * self.dim)
        for i, (spectral, pointwise) in enumerate(zip(self.spectral, self.pointwise, strict=True)):
            h = spectral(h) + pointwise(h.movedim(1, -1)).movedim(-1, 1)
            if i < len(self.spectral) - 1 or self.activate_last:
                h = self.act(h)
        if self.padding:
            h = h[(slice(None), slice(None), *(slice(0, n) for n in grid))]
        return self.project(h.movedim(1, -1)).movedim(-1, 1)


@register_model("fno2d")
class FNO2d(FourierNeuralOperator):
    """2D FNO, ``(B, C, H, W) -> (B, out_channels, H, W)`` (see :class:`FourierNeuralOperator`)."""

    def __init__(self, in_channels: int = 1, out_channels: int = 1, modes: Sequence[int] = (12, 12),
                 width: int = 32, layers: int = 4, fc_dim: int = 128, padding: int = 0,
                 activation_name: str = "gelu", activate_last: bool = False):
        if len(tuple(modes)) != 2:
            raise ValueError(f"FNO2d: `modes` must have 2 entries, got {modes}")
        super().__init__(in_channels, out_channels, tuple(modes), width, layers, fc_dim, padding,
                         activation_name, activate_last)


@register_model("fno3d")
class FNO3d(FourierNeuralOperator):
    """3D FNO, ``(B, C, D, H, W) -> (B, out_channels, D, H, W)`` (see
    :class:`FourierNeuralOperator`)."""

    def __init__(self, in_channels: int = 1, out_channels: int = 1, modes: Sequence[int] = (8, 8, 8),
                 width: int = 20, layers: int = 4, fc_dim: int = 128, padding: int = 0,
                 activation_name: str = "gelu", activate_last: bool = False):
        if len(tuple(modes)) != 3:
            raise ValueError(f"FNO3d: `modes` must have 3 entries, got {modes}")
        super().__init__(in_channels, out_channels, tuple(modes), width, layers, fc_dim, padding,
                         activation_name, activate_last)

