"""MultiONet (Zang & Koutsourelakis 2025, "DGNO", arXiv 2502.06250).

Branch and trunk are MLPs of equal depth and widths; the inner product is taken after every
hidden layer ``l``, ``s_l = <b^(l)(u), t^(l)(y)>``, and the output is
``(1/L) sum_l w_l s_l + b0`` with learnable scalars ``w_l`` initialised at 0 and a bias ``b0``.
DeepONet is the special case that uses only the last layer.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from pdekit.models.deeponet import BranchTrunkOperator
from pdekit.models.layers import MLP
from pdekit.models.registry import register_model

__all__ = ["MultiONet"]


@register_model("multionet")
class MultiONet(BranchTrunkOperator):
    """MultiONet: per-layer branch-trunk inner products, weighted and averaged.

    Parameters
    ----------
    branch_input : int
        Branch input size ``m`` (sensors, or ``in_channels * prod(grid)`` for a field).
    trunk_input : int
        Dimension ``d`` of the query points.
    widths : sequence of int
        Hidden widths shared by branch and trunk (equal depth and widths); each divisible by
        ``outputs``.
    outputs : int
        Number of output functions (each layer's features are split among them).
    layers : "all" or int
        Which layers contribute: all, or the last ``k``.
    branch_activation, trunk_activation : str
        The authors' residual activations by default: ``silu(x) + x`` (branch) and
        ``tanh(sin(pi (x + 1))) + x`` (trunk).

    Shapes:
        see :class:`~pdekit.models.deeponet.BranchTrunkOperator`.
    """

    def __init__(
        self,
        branch_input: int,
        trunk_input: int,
        widths: Sequence[int] = (100, 100, 100, 100),
        *,
        outputs: int = 1,
        layers: str | int = "all",
        branch_activation: str = "silu_residual",
        trunk_activation: str = "sin_tanh_residual",
    ):
        super().__init__()
        if any(w % outputs for w in widths):
            raise ValueError(f"MultiONet: every width must be divisible by outputs={outputs}, "
                             f"got {list(widths)}")
        depth = len(widths)
        if layers == "all":
            count = depth
        elif isinstance(layers, int) and not isinstance(layers, bool) and 1 <= layers <= depth:
            count = layers
        else:
            raise ValueError(f"MultiONet: `layers` must be 'all' or an int in [1, {depth}], got {layers!r}")
        self.outputs, self.widths = outputs, list(widths)
        self.first = depth - count  # index of the first contributing layer
        # every layer is activated: each one's features enter an inner product
        self.branch = MLP([branch_input, *widths], branch_activation, activate_last=True)
        self.trunk = MLP([trunk_input, *widths], trunk_activation, activate_last=True)
        self.layer_weights = nn.Parameter(torch.zeros(count))
        self.bias = nn.Parameter(torch.zeros(outputs))

    def _evaluate(self, u: torch.Tensor, y: torch.Tensor, shared: bool) -> torch.Tensor:
        bs = self.branch.hidden_states(u)[self.first:]
        ts = self.trunk.hidden_states(y)[self.first:]
        total = 0.0
        for w, b, t in zip(self.layer_weights, bs, ts, strict=True):
            b = b.unflatten(-1, (self.outputs, -1))
            t = t.unflatten(-1, (self.outputs, -1))
            s = torch.einsum("bop,nop->bno", b, t) if shared else torch.einsum("bop,bnop->bno", b, t)
            total = total + w * s
        return total / len(bs) + self.bias
