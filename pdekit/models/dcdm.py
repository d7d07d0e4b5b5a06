"""The deep conjugate direction method's network, and the learned preconditioner built on it.

Kaneda, Akar, Chen, Kala, Hyde & Teran, "A Deep Conjugate Direction Method for Iteratively
Solving Linear Systems", ICML 2023 (arXiv:2205.10763), Sec. 3.3 and Fig. 2: a fully
convolutional network ``f`` with ``f(r) ≈ c A^{-1} r`` (any scale ``c``), trained without
solutions on the scale-invariant loss of their Eq. (8) (:func:`dcdm_loss`). Because it is fully
convolutional and masks solid cells, one model serves any grid size and obstacle layout.

:class:`LearnedPreconditioner` wraps a trained network as a :class:`~pdekit.linalg.LinearOperator`
(tagged nonlinear), so ``pdekit.linalg.cg(A, b, M=M)`` (flexible CG) and
``pdekit.linalg.dcdm(A, b, M)`` both take it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import scipy.sparse.linalg
import torch
import torch.nn.functional as F
from torch import nn

from pdekit.linalg.operator import LinearOperator, normalize_device
from pdekit.models.layers import VolumeConv3d
from pdekit.models.registry import register_model

__all__ = ["DCDMNet", "LearnedPreconditioner", "dcdm_loss"]


class _ResidualPair(nn.Module):
    """``h + relu(conv(relu(conv(h))))``: two 'same' convolutions, ReLU before the skip."""

    def __init__(self, conv, channels: int):
        super().__init__()
        self.first = conv(channels, channels, 3, padding=1)
        self.second = conv(channels, channels, 3, padding=1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + F.relu(self.second(F.relu(self.first(h))))


@register_model("dcdm-net")
class DCDMNet(nn.Module):
    """The DCDM network (Kaneda et al. 2023, Fig. 2): residual -> search direction.

    A 3x3(x3) convolution lifts the residual to ``channels``; ``blocks[0]`` residual pairs at
    full resolution; a 2x average pool; ``blocks[1]`` pairs at half resolution; nearest
    upsampling added back to the full-resolution features; ``blocks[2]`` more pairs; a per-cell
    linear head to one channel. ``blocks=(2, 3, 2)`` gives the paper's 64^3 model (15
    convolutions, 97,457 parameters in 3D); ``(3, 5, 3)`` its 128^3 one (23, 152,881).

    ``levels > 1`` (ours, not the paper's) nests the same pattern: each level down has
    ``blocks[0]`` pairs, a pool, the next level, the upsampled result added back and
    ``blocks[2]`` pairs; the coarsest level has ``blocks[1]``. The receptive field then grows
    as ``2**levels`` (a multigrid-like hierarchy, in the spirit of the multi-level network of
    Lan et al., ICML 2024) at little extra cost, since each coarser level has ``2**dim`` times
    fewer cells. Measured in 2D (docs/dcdm.md): three levels trained on 64^2 reach a lower
    training loss than one, but need more DCDM iterations at the paper's depth 2 and do not
    carry over to larger grids; an experiment option, not the shipped networks.

    Parameters
    ----------
    dim : {2, 3}
        Spatial dimension.
    channels : int
        Feature channels (16 in the paper).
    blocks : (int, int, int)
        Residual pairs before the pool, at half resolution, after the upsampling.
    mask_input : bool
        Also feed the fluid indicator (1 on fluid cells, 0 on solid) as a second input channel,
        so the network sees the domain as well as the residual (as the domain image input of
        Lan et al., "Neural preconditioned Poisson solver for mixed boundary conditions", ICML
        2024). False: the paper's one-channel network, which sees obstacles only as zeros of
        ``r``.
    levels : int
        Number of 2x pooling levels (1: the paper's network).

    Shapes:
        ``forward(r, solid)``: ``r`` ``(B, *grid)``, ``solid`` ``(B, *grid)`` or ``grid``
        (bool, True on solid cells) or None -> ``(B, *grid)``, zero on solid cells. Any grid
        size, odd ones included.
    """

    def __init__(self, dim: int = 3, channels: int = 16, blocks: Sequence[int] = (2, 3, 2),
                 mask_input: bool = False, levels: int = 1):
        super().__init__()
        if dim not in (2, 3):
            raise ValueError(f"DCDMNet: `dim` must be 2 or 3, got {dim}")
        blocks = tuple(int(b) for b in blocks)
        if len(blocks) != 3 or min(blocks) < 0:
            raise ValueError(f"DCDMNet: `blocks` must be three non-negative integers, got {blocks}")
        if int(levels) != levels or levels < 1:
            raise ValueError(f"DCDMNet: `levels` must be a positive integer, got {levels}")
        conv = VolumeConv3d if dim == 3 else nn.Conv2d
        self.dim = dim
        self.mask_input = bool(mask_input)
        self.lift = conv(2 if self.mask_input else 1, channels, 3, padding=1)
        self.fine = nn.Sequential(*[_ResidualPair(conv, channels) for _ in range(blocks[0])])
        self.coarse = nn.Sequential(*[_ResidualPair(conv, channels) for _ in range(blocks[1])])
        self.after = nn.Sequential(*[_ResidualPair(conv, channels) for _ in range(blocks[2])])
        # levels 1 .. levels-1, between the finest and the coarsest (empty for the paper's net)
        self.levels = int(levels)
        self.down = nn.ModuleList(nn.Sequential(*[_ResidualPair(conv, channels) for _ in range(blocks[0])])
                                  for _ in range(self.levels - 1))
        self.up = nn.ModuleList(nn.Sequential(*[_ResidualPair(conv, channels) for _ in range(blocks[2])])
                                for _ in range(self.levels - 1))
        self.head = conv(channels, 1, 1)

    def forward(self, r: torch.Tensor, solid: torch.Tensor | None = None) -> torch.Tensor:
        if r.ndim != self.dim + 1:
            raise ValueError(f"DCDMNet: `r` must be (batch, *grid) with {self.dim} grid axes, "
                             f"got shape {tuple(r.shape)}")
        fluid = None if solid is None else (~solid.bool()).to(r.dtype).expand(r.shape)
        if fluid is not None:
            r = r * fluid
        h = r.unsqueeze(1)
        if self.mask_input:
            h = torch.cat([h, (torch.ones_like(r) if fluid is None else fluid).unsqueeze(1)], dim=1)
        h = F.relu(self.lift(h))
        out = self.head(self._level(h, 0)).squeeze(1)
        return out * fluid if fluid is not None else out

    def _level(self, h: torch.Tensor, level: int) -> torch.Tensor:
        """Pairs, pool, the next level (the coarsest: pairs only), upsample and add, pairs."""
        if level == self.levels:
            return self.coarse(h)
        h = (self.fine if level == 0 else self.down[level - 1])(h)
        pool = F.avg_pool3d if self.dim == 3 else F.avg_pool2d
        upsampled = F.interpolate(self._level(pool(h, 2, ceil_mode=True), level + 1), scale_factor=2,
                                  mode="nearest")
        h = h + upsampled[(..., *[slice(0, n) for n in h.shape[2:]])]
        return (self.after if level == 0 else self.up[level - 1])(h)


def dcdm_loss(A, b: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Kaneda et al. (2023), Eq. (8): ``|| b - (q.b / q.Aq) A q ||^2`` per sample.

    The residual left after an exact line search from 0 along ``q``: invariant to the scale
    of ``q`` (and zero when ``q`` is parallel to ``A^{-1} b``). ``A`` maps ``(B, *grid)``
    batches (e.g. a :class:`~pdekit.linalg.StencilOperator`'s ``matvec``); ``b`` and ``q``
    are ``(B, *grid)``. Returns ``(B,)``.
    """
    Aq = A(q)
    batch = b.shape[0]
    qb = (q * b).reshape(batch, -1).sum(1)
    qAq = (q * Aq).reshape(batch, -1).sum(1)
    tiny = torch.finfo(q.dtype).tiny
    step = qb / torch.where(qAq.abs() > tiny, qAq, torch.full_like(qAq, tiny))
    residual = b - step.reshape(batch, *([1] * (b.ndim - 1))) * Aq
    return residual.square().reshape(batch, -1).sum(1)


class LearnedPreconditioner(LinearOperator):
    """A trained :class:`DCDMNet` as a preconditioner ``M r = ±||r|| f(r / ||r||)`` (the sign
    that makes ``r . M r >= 0``).

    Nonlinear (tagged ``symmetric=False`` and ``nonlinear=True``): :func:`pdekit.linalg.cg`
    switches to flexible CG for it, and :func:`pdekit.linalg.dcdm` is the iteration it was
    trained for. Not yet bound to a system it has no shape; ``cg`` and ``dcdm`` bind it to
    their ``A`` (:meth:`bind`: grid shape, solid cells, dtype and device), so one object serves
    every system. The network runs in its own dtype (float32) whatever ``A``'s; keep it
    float32: a bf16 network doubled the iterations from 64^3 up (docs/dcdm.md).

    ``scales`` (ours, not the paper's) cycles the grid the network sees: at scale ``s`` the
    residual is averaged over ``s``-cell blocks, the network runs on that coarser grid (a
    coarse cell is solid where all its cells are), and its output is interpolated back
    (bilinear / trilinear) and masked. Successive applications take ``scales[0]``,
    ``scales[1]``, ... in turn, from the start at every :meth:`bind`. The Poisson operator on a
    coarser grid is again a Poisson operator, so the same network proposes the smooth
    directions it misses on grids much larger than its training grid, at ``s**dim`` times less
    cost; the A-orthogonalisation of :func:`pdekit.linalg.dcdm` combines the proposals
    (docs/dcdm.md: at 256^2 and depth 20, 142 -> 49 iterations with ``(1, 2, 4)``).

    Parameters
    ----------
    net : DCDMNet
        The trained network (e.g. ``pdekit.load(path)``).
    grid_shape : tuple of int, optional
        Bind to this grid now (as :meth:`bind`).
    solid : bool tensor, optional
        Solid cells of that grid.
    scales : sequence of int
        Coarsening factors the applications cycle through; ``(1,)`` (the default): the network
        on the system's own grid, as in the paper.
    """

    nonlinear = True

    def __init__(self, net: DCDMNet, grid_shape: Sequence[int] | None = None, solid=None, *,
                 dtype: torch.dtype = torch.float64, device: torch.device | str | None = None,
                 scales: Sequence[int] = (1,)):
        device = normalize_device(device) if device is not None else next(net.parameters()).device
        grid_shape = tuple(grid_shape) if grid_shape is not None else (1,) * net.dim
        if len(grid_shape) != net.dim:
            raise ValueError(f"LearnedPreconditioner: a {net.dim}D network cannot precondition a "
                             f"grid of shape {grid_shape}")
        n = math.prod(grid_shape)
        super().__init__((n, n), dtype, device, vector_shape=grid_shape, symmetric=False)
        self.net = net.to(device).eval()
        self.bound = grid_shape != (1,) * net.dim or solid is not None
        self.solid = None if solid is None else torch.as_tensor(solid, device=device).bool()
        self.net_dtype = next(net.parameters()).dtype
        self.scales = _check_scales(scales)
        self._applications = 0
        self._coarse_solid: dict[int, torch.Tensor | None] = {}

    def bind(self, A) -> LearnedPreconditioner:
        """This preconditioner for the system ``A`` (its grid shape, solid cells, dtype, device)."""
        shape = tuple(getattr(A, "vector_shape", ()))
        if len(shape) != self.net.dim:
            raise ValueError(f"LearnedPreconditioner: `A` must act on a {self.net.dim}D grid (e.g. a "
                             f"StencilOperator); it acts on vectors of shape {shape}")
        net = self.net if normalize_device(A.device) == self.device else self.net.to(A.device)
        return LearnedPreconditioner(net, shape, getattr(A, "solid", None), dtype=A.dtype, device=A.device,
                                     scales=self.scales)

    @torch.no_grad()
    def _matvec(self, x: torch.Tensor) -> torch.Tensor:
        factor = self.scales[self._applications % len(self.scales)]
        self._applications += 1
        batch = x.shape[0]
        r = x if factor == 1 else self._restrict(x, factor)
        norm = torch.linalg.vector_norm(r.reshape(batch, -1), dim=1)
        scale = torch.where(norm > 0, norm, torch.ones_like(norm)).reshape(batch, *([1] * (x.ndim - 1)))
        solid = self.solid if factor == 1 else self._solid_at(factor)
        z = self.net((r / scale).to(self.net_dtype), None if solid is None else solid.expand(r.shape))
        z = z.to(x.dtype)
        if factor != 1:
            mode = "bilinear" if self.net.dim == 2 else "trilinear"
            z = F.interpolate(z.unsqueeze(1), size=x.shape[1:], mode=mode, align_corners=False).squeeze(1)
            if self.solid is not None:
                z = z.masked_fill(self.solid.expand(z.shape), 0.0)
        # the network's scale, sign included, is arbitrary: choose the sign with r.Mr >= 0
        # (what CG's step needs; DCDM's line search does not care)
        sign = torch.where((z * x).reshape(batch, -1).sum(1) < 0, -1.0, 1.0).to(x.dtype)
        return z * (sign.reshape(scale.shape) * scale)

    def _restrict(self, x: torch.Tensor, factor: int) -> torch.Tensor:
        """``x`` averaged over ``factor``-cell blocks (partial blocks at the far edges)."""
        pool = F.avg_pool3d if self.net.dim == 3 else F.avg_pool2d
        return pool(x.unsqueeze(1), factor, ceil_mode=True).squeeze(1)

    def _solid_at(self, factor: int) -> torch.Tensor | None:
        """Solid cells of the grid coarsened by ``factor``: blocks whose cells are all solid."""
        if factor not in self._coarse_solid:
            self._coarse_solid[factor] = None if self.solid is None else (
                self._restrict(self.solid[None].to(torch.float32), factor)[0] > 0.999)
        return self._coarse_solid[factor]

    def _to(self, device, dtype) -> LearnedPreconditioner:
        return LearnedPreconditioner(self.net.to(device), self.vector_shape if self.bound else None,
                                     self.solid, dtype=dtype, device=device, scales=self.scales)

    def as_scipy(self, grid_shape: Sequence[int] | None = None,
                 solid=None) -> scipy.sparse.linalg.LinearOperator:
        """As a SciPy ``LinearOperator`` on flattened vectors of ``grid_shape`` (C order), e.g.
        for ``scipy.sparse.linalg.cg(A, b, M=M.as_scipy(shape))`` (SciPy's CG assumes a fixed
        SPD ``M``: expect it to work less well than the flexible :func:`pdekit.linalg.cg`)."""
        if grid_shape is None:
            if not self.bound:
                raise ValueError("LearnedPreconditioner.as_scipy: give `grid_shape`")
            op = self
        else:
            op = LearnedPreconditioner(self.net, grid_shape, solid, dtype=torch.float64, device=self.device,
                                       scales=self.scales)
        n = op.shape[0]

        def apply(v: np.ndarray) -> np.ndarray:
            x = torch.as_tensor(np.asarray(v, np.float64).reshape(1, *op.vector_shape), device=op.device)
            return op._matvec(x.to(op.dtype)).double().cpu().numpy().reshape(v.shape)

        return scipy.sparse.linalg.LinearOperator((n, n), matvec=apply, dtype=np.float64)

    def _describe_tags(self) -> str:
        cycle = "" if self.scales == (1,) else f", grid scales cycling {self.scales}"
        return f"nonlinear (a network), symmetric=False{cycle}"


def _check_scales(scales) -> tuple[int, ...]:
    try:
        values = tuple(scales)
    except TypeError:
        values = ()
    if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
        raise ValueError(f"LearnedPreconditioner: `scales` must be a non-empty sequence of positive integers "
                         f"(coarsening factors), got {scales!r}")
    return values
