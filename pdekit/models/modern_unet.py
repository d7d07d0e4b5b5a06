"""The modern 1D U-Net of PDE-Refiner and PDEArena, conditioned on a step index and PDE scalars.

Gupta and Brandstetter, "Towards multi-spatiotemporal-scale generalized PDE modeling" (TMLR
2023, the "modern U-Net") as used by Lippe et al., "PDE-Refiner" (NeurIPS 2023, appendix D.2):
pre-activation residual blocks (GroupNorm, GELU, circular convolutions, the second convolution
zero-initialised), ``blocks`` of them per level going down and ``blocks + 1`` coming up (each
taking a skip connection, the last one narrowing to the next level's width), two in the middle,
stride-2 convolutions down and transposed convolutions up, no attention. The conditioning
``emb = MLP(sin(k)) + sum_s MLP_s(sin(s))`` of the refinement step ``k`` and each PDE scalar
``s`` (sinusoidal embeddings, Vaswani et al. 2017) enters every block as a scale and shift of
its second normalisation (FiLM; Dhariwal and Nichol 2021, "use_scale_shift_norm").
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from pdekit.models.registry import register_model

__all__ = ["ModernUNet1d", "sinusoidal_embedding"]


def sinusoidal_embedding(values: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """``[cos(v f_j), sin(v f_j)]`` with ``f_j = max_period^(-j / (dim/2))``; ``(B,) -> (B, dim)``."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32,
                                                            device=values.device) / half)
    args = values.float()[:, None] * freqs
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


def _groups(channels: int, groups: int = 8) -> int:
    return math.gcd(channels, groups)


class _Embedding(nn.Module):
    """Sinusoidal embedding of a number, then ``Linear, GELU, Linear`` to ``4 * hidden``."""

    def __init__(self, hidden: int, multiplier: float):
        super().__init__()
        self.hidden, self.multiplier = hidden, multiplier
        self.mlp = nn.Sequential(nn.Linear(hidden, 4 * hidden), nn.GELU(), nn.Linear(4 * hidden, 4 * hidden))

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        emb = sinusoidal_embedding(values * self.multiplier, self.hidden)
        return self.mlp(emb.to(self.mlp[0].weight.dtype))


class _ResidualBlock(nn.Module):
    """``x + conv(GELU(FiLM(GN(conv(GELU(GN(x)))), emb)))``, 1x1 shortcut where channels change."""

    def __init__(self, in_channels: int, out_channels: int, emb_channels: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(in_channels), in_channels)
        self.conv1 = nn.Conv1d(in_channels, out_channels, 3, padding=1, padding_mode="circular")
        self.emb = nn.Linear(emb_channels, 2 * out_channels)
        self.norm2 = nn.GroupNorm(_groups(out_channels), out_channels)
        self.conv2 = nn.Conv1d(out_channels, out_channels, 3, padding=1, padding_mode="circular")
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.shortcut = (nn.Conv1d(in_channels, out_channels, 1) if in_channels != out_channels
                         else nn.Identity())

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.gelu(self.norm1(x)))
        scale, shift = self.emb(F.gelu(emb))[..., None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        return self.shortcut(x) + self.conv2(F.gelu(h))


class _Down(nn.Module):
    """Stride-2 circular convolution: ``(B, C, N) -> (B, C, N/2)``."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, 3, stride=2, padding=1, padding_mode="circular")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class _Up(nn.Module):
    """Transposed convolution (kernel 4, stride 2) made periodic: the input is padded
    circularly by one point each side and the output cropped: ``(B, C, N) -> (B, C, 2N)``."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.ConvTranspose1d(channels, channels, 4, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[-1]
        return self.conv(F.pad(x, (1, 1), mode="circular"))[..., 3 : 3 + 2 * n]


@register_model("modern-unet1d")
class ModernUNet1d(nn.Module):
    """Modern 1D U-Net conditioned on a step index and PDE scalars (see the module docstring).

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the input and output fields.
    hidden : int
        Width of the first convolution and of the embeddings (``4 * hidden`` after their MLP).
    widths : tuple of int
        Channels of each level (one level per resolution; each level but the last halves it).
        PDE-Refiner's KS model: ``hidden = 64``, ``widths = (64, 128, 256, 1024)``.
    blocks : int
        Residual blocks per level going down (``blocks + 1`` coming up).
    scalars : int
        Number of PDE scalars embedded (0: none).
    step_multiplier, scalar_multiplier : float
        The step and the scalars are multiplied by these before their sinusoidal embedding
        (PDEArena: ``1000 / K`` for the step).

    Shapes: ``x (B, in_channels, N)``, ``step (B,)``, ``scalars (B, scalars)`` ->
    ``(B, out_channels, N)``; ``N`` divisible by ``2^(len(widths) - 1)``.
    """

    def __init__(self, in_channels: int = 2, out_channels: int = 1, *, hidden: int = 64,
                 widths: tuple = (64, 128, 256, 1024), blocks: int = 2, scalars: int = 2,
                 step_multiplier: float = 1.0, scalar_multiplier: float = 1000.0):
        super().__init__()
        if hidden < 1 or blocks < 1 or not widths or min(widths) < 1:
            raise ValueError("ModernUNet1d: `hidden`, `blocks` and every entry of `widths` must be >= 1")
        self.levels = len(widths)
        self.scalars = scalars
        emb = 4 * hidden
        self.step_embedding = _Embedding(hidden, step_multiplier)
        self.scalar_embeddings = nn.ModuleList(_Embedding(hidden, scalar_multiplier) for _ in range(scalars))
        self.lift = nn.Conv1d(in_channels, hidden, 3, padding=1, padding_mode="circular")
        skips = [hidden]
        channels = hidden
        self.down = nn.ModuleList()
        for level, width in enumerate(widths):
            for _ in range(blocks):
                self.down.append(_ResidualBlock(channels, width, emb))
                channels = width
                skips.append(channels)
            if level < self.levels - 1:
                self.down.append(_Down(channels))
                skips.append(channels)
        self.middle = nn.ModuleList([_ResidualBlock(channels, channels, emb),
                                     _ResidualBlock(channels, channels, emb)])
        self.up = nn.ModuleList()
        for level in reversed(range(self.levels)):
            for j in range(blocks + 1):
                # the last block of a level narrows to the next level's width (PDEArena)
                width = widths[level] if j < blocks else (widths[level - 1] if level else hidden)
                self.up.append(_ResidualBlock(channels + skips.pop(), width, emb))
                channels = width
            if level > 0:
                self.up.append(_Up(channels))
        self.norm = nn.GroupNorm(_groups(channels), channels)
        self.project = nn.Conv1d(channels, out_channels, 3, padding=1, padding_mode="circular")

    def forward(self, x: torch.Tensor, step: torch.Tensor | None = None,
                scalars: torch.Tensor | None = None) -> torch.Tensor:
        factor = 2 ** (self.levels - 1)
        if x.ndim != 3 or x.shape[-1] % factor:
            raise ValueError(f"ModernUNet1d: `x` must be (B, C, N) with N divisible by {factor}, "
                             f"got {tuple(x.shape)}")
        batch = x.shape[0]
        if step is None:
            step = torch.zeros(batch, device=x.device)
        emb = self.step_embedding(step.reshape(batch))
        if self.scalars:
            if scalars is None or scalars.shape != (batch, self.scalars):
                got = None if scalars is None else tuple(scalars.shape)
                raise ValueError(f"ModernUNet1d: `scalars` must have shape ({batch}, {self.scalars}), "
                                 f"got {got}")
            for i, embedding in enumerate(self.scalar_embeddings):
                emb = emb + embedding(scalars[:, i])
        emb = emb.to(x.dtype)
        h = self.lift(x)
        skips = [h]
        for module in self.down:
            h = module(h, emb) if isinstance(module, _ResidualBlock) else module(h)
            skips.append(h)
        for module in self.middle:
            h = module(h, emb)
        for module in self.up:
            if isinstance(module, _ResidualBlock):
                h = module(torch.cat([h, skips.pop()], dim=1), emb)
            else:
                h = module(h)
        return self.project(F.gelu(self.norm(h)))
