"""DeepONet (Lu et al., Nat. Mach. Intell. 2021, arXiv 1910.03193), unstacked with bias.

``G(u)(y) ~ sum_k b_k(u) t_k(y) + b0`` (their eq. 2): a branch net reads the input function
``u`` (at ``m`` sensors, or as a field on a grid through a small CNN, Lu et al. 2022) and
returns ``p`` coefficients per output; a trunk net reads the query point ``y`` and returns
``p`` basis values per output (its last layer activated too); ``b0`` is one bias per output,
initialised at 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from pdekit.models.layers import MLP, activation, glorot_normal_
from pdekit.models.registry import register_model

__all__ = ["BranchTrunkOperator", "CNNBranch", "DeepONet", "grid_points"]


def grid_points(grid_shape: Sequence[int], device=None, dtype=None) -> torch.Tensor:
    """Node coordinates of a uniform grid on ``[0, 1]^d`` (C order), shape ``(prod(grid), d)``."""
    axes = [torch.linspace(0.0, 1.0, int(n), device=device, dtype=dtype) for n in grid_shape]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, len(grid_shape))


class CNNBranch(nn.Module):
    """Branch net for an input field on a 2D grid (Lu et al. 2022, Darcy): strided 5x5
    convolutions, then dense layers.

    Shapes:
        ``(B, in_channels, H, W) -> (B, widths[-1])``
    """

    def __init__(self, in_channels: int, grid_shape: Sequence[int], conv_channels: Sequence[int],
                 widths: Sequence[int], kernel: int = 5, stride: int = 2, activation_name: str = "relu"):
        super().__init__()
        if len(grid_shape) != 2:
            raise ValueError(f"CNNBranch: `grid_shape` must be 2D, got {tuple(grid_shape)}")
        layers: list[nn.Module] = []
        channels, size = in_channels, list(grid_shape)
        for out in conv_channels:
            layers += [nn.Conv2d(channels, out, kernel, stride), activation(activation_name)]
            channels = out
            size = [(n - kernel) // stride + 1 for n in size]
            if min(size) < 1:
                raise ValueError(f"CNNBranch: grid {tuple(grid_shape)} too small for {len(conv_channels)} "
                                 f"convolutions of kernel {kernel}, stride {stride}")
        self.convs = nn.Sequential(*layers)
        self.dense = MLP([channels * size[0] * size[1], *widths], activation_name)
        self.convs.apply(glorot_normal_)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.dense(self.convs(u).flatten(1))


class BranchTrunkOperator(nn.Module):
    """Shared calling conventions of the branch-trunk operators (DeepONet, MultiONet).

    Subclasses implement ``_evaluate(u, y, shared)``: ``u`` the branch input ``(B, ...)``, ``y``
    the query points, ``(P, d)`` shared by the batch (``shared=True``) or ``(B, P, d)``;
    it returns ``(B, P, outputs)``.

    Calls:

    * ``model(u, y)`` with ``y`` of shape ``(B, d)``: one query point per sample ->
      ``(B, outputs)``; with ``y`` of shape ``(B, P, d)`` -> ``(B, P, outputs)``.
    * ``model.cartesian(u, y)`` with one shared point set ``y`` ``(P, d)`` -> ``(B, P, outputs)``
      (the efficient form for grid data).
    * ``model(u)`` with a field ``u`` of shape ``(B, C, *grid)``: evaluated at the grid's nodes
      on ``[0, 1]^d`` -> ``(B, outputs, *grid)`` (how the Trainer calls field-to-field models).
    """

    outputs: int
    flatten_field: bool = True  # an MLP branch reads the field flattened

    def _evaluate(self, u: torch.Tensor, y: torch.Tensor, shared: bool) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, u: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if y is None:
            if u.ndim < 3:
                raise ValueError(f"{type(self).__name__}: without `y`, `u` must be a field (B, C, *grid), "
                                 f"got shape {tuple(u.shape)}")
            grid = u.shape[2:]
            points = grid_points(grid, device=u.device, dtype=u.dtype)
            branch_input = u.flatten(1) if self.flatten_field else u
            out = self._evaluate(branch_input, points, shared=True)  # (B, P, outputs)
            return out.transpose(1, 2).reshape(u.shape[0], self.outputs, *grid)
        if y.ndim == 2:
            if y.shape[0] != u.shape[0]:
                raise ValueError(f"{type(self).__name__}: `y` of shape (B, d) needs B = {u.shape[0]} rows, "
                                 f"got {y.shape[0]} (for one shared point set use .cartesian)")
            return self._evaluate(u, y[:, None, :], shared=False)[:, 0]
        if y.ndim == 3:
            return self._evaluate(u, y, shared=False)
        raise ValueError(f"{type(self).__name__}: `y` must be (B, d) or (B, P, d), got {tuple(y.shape)}")

    def cartesian(self, u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Evaluate every input function at every point of ``y`` ``(P, d)``: ``(B, P, outputs)``."""
        if y.ndim != 2:
            raise ValueError(f"{type(self).__name__}.cartesian: `y` must be (P, d), got {tuple(y.shape)}")
        return self._evaluate(u, y, shared=True)


@register_model("deeponet")
class DeepONet(BranchTrunkOperator):
    """Unstacked DeepONet with bias (Lu et al. 2021, eq. 2).

    Parameters
    ----------
    branch : sequence of int
        Branch widths. MLP branch: ``[m, ..., p * outputs]`` (``m`` sensors, or
        ``in_channels * prod(grid_shape)`` for a flattened field). CNN branch: the dense widths
        after the convolutions, ``[..., p * outputs]``.
    trunk : sequence of int
        Trunk widths ``[d, ..., p * outputs]``; the last layer is activated.
    outputs : int
        Number of output functions; the ``p * outputs`` features are split among them.
    activation : str
        Hidden activation of both nets.
    branch_type : {"mlp", "cnn"}
        ``"cnn"`` reads a 2D field ``(B, in_channels, *grid_shape)``.

    Other Parameters
    ----------------
    in_channels, grid_shape : int, sequence of int
        Input field layout (CNN branch).
    conv_channels : sequence of int
        Channels of the stride-2 5x5 convolutions of the CNN branch (Lu et al. 2022: 64, 128).

    Shapes:
        see :class:`BranchTrunkOperator`.
    """

    def __init__(
        self,
        branch: Sequence[int] = (100, 40, 40),
        trunk: Sequence[int] = (1, 40, 40),
        *,
        outputs: int = 1,
        activation: str = "relu",
        branch_type: str = "mlp",
        in_channels: int = 1,
        grid_shape: Sequence[int] | None = None,
        conv_channels: Sequence[int] = (64, 128),
    ):
        super().__init__()
        if branch[-1] != trunk[-1] or branch[-1] % outputs:
            raise ValueError(f"DeepONet: branch and trunk must end in the same width p * outputs, "
                             f"got branch {list(branch)}, trunk {list(trunk)}, outputs {outputs}")
        self.outputs, self.p = outputs, branch[-1] // outputs
        if branch_type == "mlp":
            self.branch = MLP(branch, activation)
        elif branch_type == "cnn":
            if grid_shape is None:
                raise ValueError("DeepONet: branch_type='cnn' needs `grid_shape`")
            self.branch = CNNBranch(in_channels, grid_shape, conv_channels, branch,
                                    activation_name=activation)
            self.flatten_field = False
        else:
            raise ValueError(f"DeepONet: `branch_type` must be 'mlp' or 'cnn', got {branch_type!r}")
        self.trunk = MLP(trunk, activation, activate_last=True)
        self.bias = nn.Parameter(torch.zeros(outputs))

    def _evaluate(self, u: torch.Tensor, y: torch.Tensor, shared: bool) -> torch.Tensor:
        b = self.branch(u).unflatten(-1, (self.outputs, self.p))  # (B, o, p)
        t = self.trunk(y).unflatten(-1, (self.outputs, self.p))  # (P, o, p) or (B, P, o, p)
        if shared:
            return torch.einsum("bop,nop->bno", b, t) + self.bias
        return torch.einsum("bop,bnop->bno", b, t) + self.bias
