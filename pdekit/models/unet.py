"""A 2D U-Net for field-to-field operator learning (Ronneberger et al. 2015), the backbone of
the Latent Spectral Model and, alone, the strong simple baseline of its paper's tables.

The input field is lifted with its grid coordinates (``Linear(C_in + 2, width)``), zero-padded on
the high side of each axis to a multiple of ``2^4 * multiple_of`` (four 2x downsamplings), run
through five scales (channels ``w, 2w, 4w, 8w, 8w``; maxpool + [conv3x3, BatchNorm, ReLU] x 2
down, bilinear upsampling + skip concatenation + the same double convolution up), cropped, and
projected by ``Linear(w, 128), GELU, Linear(128, C_out)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pdekit.models.deeponet import grid_points
from pdekit.models.registry import register_model

__all__ = ["DoubleConv", "UNet", "UShapedBackbone"]


class DoubleConv(nn.Module):
    """``[conv3x3, BatchNorm, ReLU] x 2``. Shapes: ``(B, C_in, H, W) -> (B, C_out, H, W)``."""

    def __init__(self, in_channels: int, out_channels: int, mid_channels: int | None = None):
        super().__init__()
        mid = mid_channels or out_channels
        self.block = nn.Sequential(
            nn.Conv2d(in_channels, mid, 3, padding=1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
            nn.Conv2d(mid, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class _Up(nn.Module):
    """Bilinear 2x upsampling, concatenation with the skip feature, double convolution."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = DoubleConv(in_channels, out_channels, in_channels // 2)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=True)
        return self.conv(torch.cat([skip, x], dim=1))


class UShapedBackbone(nn.Module):
    """The five-scale U-shaped network with a hook on every skip connection.

    ``skips`` (an ``nn.ModuleList`` of five modules, identity by default) transforms the
    features of each scale before the decoder uses them: the Latent Spectral Model puts its
    neural spectral blocks there.
    """

    def __init__(self, width: int):
        super().__init__()
        w = width
        self.channels = (w, 2 * w, 4 * w, 8 * w, 8 * w)
        self.inc = DoubleConv(w, w)
        self.downs = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(2), DoubleConv(a, b))
            for a, b in zip(self.channels[:-1], self.channels[1:], strict=True)
        )
        self.ups = nn.ModuleList([_Up(16 * w, 4 * w), _Up(8 * w, 2 * w), _Up(4 * w, w), _Up(2 * w, w)])
        self.outc = nn.Conv2d(w, w, 1)
        self.skips = nn.ModuleList(nn.Identity() for _ in range(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [self.inc(x)]
        for down in self.downs:
            features.append(down(features[-1]))
        features = [skip(f) for skip, f in zip(self.skips, features, strict=True)]
        x = features[-1]
        for up, skip in zip(self.ups, reversed(features[:-1]), strict=True):
            x = up(x, skip)
        return self.outc(x)


@register_model("unet")
class UNet(nn.Module):
    """U-Net operator on 2D fields (the LSM paper's U-Net baseline).

    Parameters
    ----------
    in_channels, out_channels : int
        Input and output fields.
    width : int
        Channels of the finest scale (``w``).
    multiple_of : int
        Each padded side is a multiple of ``16 * multiple_of`` (the LSM's patch size; 1 for a
        plain U-Net).

    Shapes:
        ``(B, in_channels, H, W) -> (B, out_channels, H, W)``, any ``H, W``.
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, width: int = 32, multiple_of: int = 1):
        super().__init__()
        if width < 1 or multiple_of < 1:
            raise ValueError(f"{type(self).__name__}: `width` and `multiple_of` must be >= 1")
        self.multiple = 16 * multiple_of
        self.lift = nn.Linear(in_channels + 2, width)
        self.backbone = UShapedBackbone(width)
        self.project = nn.Sequential(nn.Linear(width, 128), nn.GELU(), nn.Linear(128, out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"{type(self).__name__}: expected (B, C, H, W), got shape {tuple(x.shape)}")
        B, _, H, W = x.shape
        grid = grid_points((H, W), device=x.device, dtype=x.dtype).T.reshape(1, 2, H, W).expand(B, -1, -1, -1)
        x = self.lift(torch.cat([x, grid], dim=1).movedim(1, -1)).movedim(-1, 1)
        pad_h, pad_w = -H % self.multiple, -W % self.multiple
        x = F.pad(x, [0, pad_w, 0, pad_h])
        x = self.backbone(x)[..., :H, :W]
        return self.project(x.movedim(1, -1)).movedim(-1, 1)
