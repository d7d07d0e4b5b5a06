"""Latent Spectral Model (Wu et al., "Solving High-Dimensional PDEs with Latent Spectral
Models", ICML 2023, arXiv 2301.12664).

A U-shaped multiscale backbone (:class:`~pdekit.models.unet.UShapedBackbone`) whose skip
feature at every scale passes through a neural spectral block (their section 3.2): the map is
cut into ``p x p`` patches; in each patch ``T`` learnable latent tokens attend to the pixels
(coordinate -> latent, multi-head); each token channel value ``z`` is expanded in the
trigonometric basis ``{sin(k pi z / K), cos(k pi z / K)}``, ``k = 0..K-1``, mixed by a learned
per-channel weight and added back (the latent spectral transition, their eq. 6); the pixels
attend to the tokens (latent -> coordinate), with residuals.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from pdekit.models.registry import register_model
from pdekit.models.unet import UNet

__all__ = ["LatentSpectralModel", "NeuralSpectralBlock"]


class NeuralSpectralBlock(nn.Module):
    """Patchified neural spectral block (LSM section 3.2).

    Parameters
    ----------
    width : int
        Channels ``C`` (divisible by ``heads``).
    num_basis : int
        Trigonometric basis operators ``K`` (12 in the paper).
    patch_size : int
        Side ``p`` of the square patches; ``H`` and ``W`` must be multiples of it.
    num_tokens : int
        Latent tokens ``T`` per patch (4).
    heads : int
        Attention heads (8).

    Shapes:
        ``(B, C, H, W) -> (B, C, H, W)``
    """

    def __init__(self, width: int, num_basis: int = 12, patch_size: int = 6, num_tokens: int = 4,
                 heads: int = 8):
        super().__init__()
        if width % heads:
            raise ValueError(f"NeuralSpectralBlock: `width` {width} must be divisible by `heads` {heads}")
        self.width, self.patch, self.heads, self.tokens = width, patch_size, heads, num_tokens
        self.register_buffer("frequencies", torch.arange(num_basis, dtype=torch.float32) / num_basis)
        self.spectral_weights = nn.Parameter(torch.rand(width, 2 * num_basis) / width)
        self.latent = nn.Parameter(torch.rand(heads, num_tokens, width // heads) / width)
        self.to_keys_values = nn.Conv2d(width, 2 * width, 1)
        self.to_queries = nn.Conv2d(width, width, 1)

    @staticmethod
    def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        # (N, heads, L, c) x (N, heads, S, c): softmax(q k^T) v, unscaled as in the reference
        return torch.softmax(q @ k.transpose(-1, -2), dim=-1) @ v

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        p = self.patch
        if H % p or W % p:
            raise ValueError(f"NeuralSpectralBlock: the map {H}x{W} is not a multiple of the patch size {p}")
        # patchify: (B * H/p * W/p, C, p, p)
        x = x.reshape(B, C, H // p, p, W // p, p).permute(0, 2, 4, 1, 3, 5).reshape(-1, C, p, p)
        N, L, h, c = x.shape[0], p * p, self.heads, C // self.heads
        # (1) coordinate -> latent: tokens attend to the patch's pixels
        kv = self.to_keys_values(x).reshape(N, 2, h, c, L).transpose(-1, -2)  # (N, 2, h, L, c)
        tokens = self.latent.expand(N, -1, -1, -1)
        tokens = self._attend(tokens, kv[:, 0], kv[:, 1]) + tokens  # (N, h, T, c)
        z = tokens.transpose(-1, -2).reshape(N, C, self.tokens)  # channel-major, as the reference
        # (2) latent spectral transition: per-channel mix of sin/cos(k pi z / K), residual
        angles = math.pi * z[..., None] * self.frequencies
        basis = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)  # (N, C, T, 2K)
        z = torch.einsum("nctk,ck->nct", basis, self.spectral_weights) + z
        # (3) latent -> coordinate: pixels attend to the tokens, residual
        tokens = z.reshape(N, h, c, self.tokens).transpose(-1, -2)  # (N, h, T, c)
        q = self.to_queries(x).reshape(N, h, c, L).transpose(-1, -2)  # (N, h, L, c)
        out = self._attend(q, tokens, tokens).transpose(-1, -2).reshape(N, C, p, p) + x
        # un-patchify
        return out.reshape(B, H // p, W // p, C, p, p).permute(0, 3, 1, 4, 2, 5).reshape(B, C, H, W)


@register_model("lsm")
class LatentSpectralModel(UNet):
    """Latent Spectral Model on 2D fields (Wu et al. 2023).

    Parameters
    ----------
    in_channels, out_channels : int
        Input and output fields.
    width : int
        ``d``, the channels of the finest scale (64 in the paper).
    num_basis : int
        Trigonometric basis operators ``K`` (12).
    num_tokens : int
        Latent tokens per patch ``T`` (4).
    patch_size : int
        Patch side ``p`` (6 for Darcy: 85 is padded to 96 = 16 x 6).
    heads : int
        Attention heads (8).

    Shapes:
        ``(B, in_channels, H, W) -> (B, out_channels, H, W)``, any ``H, W`` (zero-padded to a
        multiple of ``16 p``).
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, width: int = 64, num_basis: int = 12,
                 num_tokens: int = 4, patch_size: int = 6, heads: int = 8):
        super().__init__(in_channels, out_channels, width, multiple_of=patch_size)
        self.backbone.skips = nn.ModuleList(
            NeuralSpectralBlock(c, num_basis, patch_size, num_tokens, heads) for c in self.backbone.channels
        )
