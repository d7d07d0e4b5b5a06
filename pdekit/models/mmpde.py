"""The moving-mesh neural PDE solver MM-PDE and its uniform-mesh GNN baseline (Hu, Wang, Ma,
"Better Neural PDE Solvers Through Data-Free Mesh Movers", ICLR 2024, section 4, figure 1b).

One step on the uniform ``n x n`` grid of ``[0, 1]^2``:

    ``u_next = u + G_uniform(u) + I_back(G_moved(I_fwd(u)), moved -> grid) + R(u)``

where ``G`` are MP-PDE-style message-passing GNNs (Brandstetter et al. 2022: messages from the
solution difference, the relative position and time, mean aggregation, BatchNorm) on k-nearest-
neighbour graphs, the moved mesh comes from a frozen :class:`~pdekit.models.mesh_mover.
DataFreeMeshMover`, ``I_fwd`` / ``I_back`` are learnable interpolations (for each query, the
``k`` nearest source nodes and an MLP of their offsets giving softmax weights; eq. 7), and ``R``
a small residual CNN on ``u`` ("residual cut"). The baseline :class:`UniformGNN` is ``G_uniform``
alone.

This is the only module of pdekit that imports torch-geometric (``MessagePassing``); graphs are
built here in plain torch on the model's device (:func:`knn_graph`), so no torch-cluster,
torch-scatter or torch-sparse is needed.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch_geometric.nn import MessagePassing

from pdekit.classical.moving_mesh import uniform_mesh
from pdekit.models.mesh_mover import DataFreeMeshMover
from pdekit.models.registry import register_model

__all__ = ["MMPDE", "GNNProcessor", "LearnableInterpolation", "UniformGNN", "knn_graph", "knn_indices",
           "uniform_graph"]


def knn_indices(source: torch.Tensor, query: torch.Tensor, k: int, *, exclude_self: bool = False,
                chunk: int = 4096, method: str = "auto") -> torch.Tensor:
    """Indices of the ``k`` nearest ``source`` points of each ``query`` point, per batch.

    Shapes: ``source (B, N, 2)``, ``query (B, Q, 2)`` -> ``(B, Q, k)``, on the inputs' device.
    ``exclude_self`` (``query`` is ``source``) drops each point itself. ``method``:
    ``"brute"`` computes all distances by ``torch.cdist`` in chunks of ``chunk`` queries and
    keeps the ``k`` smallest (``topk``); ``"tree"`` queries a k-d tree per batch element
    (``scipy.spatial.cKDTree``, CPU tensors only); ``"auto"`` takes the tree on the CPU (6-12x
    faster there at MM-PDE's sizes: ``pdekit bench mesh-movers``) and brute force on other
    devices. Equidistant neighbours may be ranked differently by the two.
    """
    if k + exclude_self > source.shape[1]:
        raise ValueError(f"knn_indices: k = {k} exceeds the {source.shape[1]} source points")
    if method not in ("auto", "brute", "tree"):
        raise ValueError(f"knn_indices: method must be 'auto', 'brute' or 'tree', got {method!r}")
    if method == "tree" or (method == "auto" and source.device.type == "cpu"):
        return _knn_tree(source, query, k, exclude_self)
    out = []
    for start in range(0, query.shape[1], chunk):
        d = torch.cdist(query[:, start : start + chunk], source)
        if exclude_self:
            rows = torch.arange(start, start + d.shape[1], device=d.device)
            d[:, torch.arange(d.shape[1], device=d.device), rows] = float("inf")
        out.append(d.topk(k, dim=-1, largest=False).indices)
    return torch.cat(out, dim=1)


def _knn_tree(source: torch.Tensor, query: torch.Tensor, k: int, exclude_self: bool) -> torch.Tensor:
    """:func:`knn_indices` by a k-d tree per batch element (CPU tensors)."""
    from scipy.spatial import cKDTree

    if source.device.type != "cpu" or query.device.type != "cpu":
        raise ValueError("knn_indices: method='tree' needs CPU tensors")
    out = []
    for src, qry in zip(source.detach().double().numpy(), query.detach().double().numpy(), strict=True):
        _, index = cKDTree(src).query(qry, k=k + exclude_self)
        index = index.reshape(len(qry), -1)
        if exclude_self:  # drop the point itself (or, for a duplicated point, the farthest)
            keep = index != np.arange(len(qry))[:, None]
            keep[keep.all(axis=1), -1] = False
            index = index[keep].reshape(len(qry), k)
        out.append(torch.from_numpy(index))
    return torch.stack(out).to(torch.long)


def knn_graph(pos: torch.Tensor, k: int, *, method: str = "auto") -> torch.Tensor:
    """The k-nearest-neighbour graph of each point cloud of ``pos (B, N, 2)`` as one batched
    ``edge_index (2, B * N * k)`` (source -> target, node ``b * N + i``), no self loops
    (``method`` as in :func:`knn_indices`)."""
    batch, n = pos.shape[:2]
    neighbours = knn_indices(pos, pos, k, exclude_self=True, method=method)  # (B, N, k)
    offset = (torch.arange(batch, device=pos.device) * n)[:, None, None]
    target = (torch.arange(n, device=pos.device)[None, :, None] + offset).expand(-1, -1, k)
    return torch.stack(((neighbours + offset).reshape(-1), target.reshape(-1)))


_UNIFORM_GRAPHS: dict[tuple, torch.Tensor] = {}


def uniform_graph(size: int, k: int, batch: int, device) -> torch.Tensor:
    """:func:`knn_graph` of ``batch`` copies of the uniform ``size x size`` grid, built once per
    ``(size, k, batch, device)`` and cached (the grid never moves). Brute force on every device:
    the grid has many equidistant neighbours, and this keeps the ranking the shipped models
    were trained with."""
    key = (size, k, batch, str(device))
    if key not in _UNIFORM_GRAPHS:
        xi = uniform_mesh(size, device=device).reshape(1, -1, 2)
        single = knn_graph(xi, k, method="brute")
        offsets = torch.arange(batch, device=device).repeat_interleave(single.shape[1]) * size * size
        _UNIFORM_GRAPHS[key] = single.repeat(1, batch) + offsets
    return _UNIFORM_GRAPHS[key]


def _mlp(widths: list[int], act=nn.SiLU) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(widths) - 1):
        layers.append(nn.Linear(widths[i], widths[i + 1]))
        if i < len(widths) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


class _MessagePassingLayer(MessagePassing):
    """One MP-PDE layer: ``m_ij = phi(h_i, h_j, u_i - u_j, x_i - x_j, t)``, mean over ``j``,
    ``h_i <- h_i + psi(h_i, m_i)`` then BatchNorm (Brandstetter et al. 2022, eq. 8-9)."""

    def __init__(self, hidden: int):
        super().__init__(aggr="mean")
        self.message_net = _mlp([2 * hidden + 4, hidden, hidden])
        self.update_net = _mlp([2 * hidden, hidden, hidden])
        self.norm = nn.BatchNorm1d(hidden)

    def forward(self, h, u, pos, t, edge_index):
        m = self.propagate(edge_index, h=h, u=u, pos=pos, t=t)
        return self.norm(h + self.update_net(torch.cat((h, m), dim=-1)))

    def message(self, h_i, h_j, u_i, u_j, pos_i, pos_j, t_i):
        return self.message_net(torch.cat((h_i, h_j, u_i - u_j, pos_i - pos_j, t_i), dim=-1))


class GNNProcessor(nn.Module):
    """Encoder, ``layers`` message-passing layers and decoder on a k-NN graph of the nodes.

    Shapes: ``forward(u (B, N), pos (B, N, 2), t (B,)) -> du (B, N)``.
    """

    def __init__(self, hidden: int = 128, layers: int = 6, neighbours: int = 35):
        super().__init__()
        self.neighbours = neighbours
        self.encoder = _mlp([4, hidden, hidden])
        self.layers = nn.ModuleList(_MessagePassingLayer(hidden) for _ in range(layers))
        self.decoder = _mlp([hidden, hidden, 1])

    def forward(self, u: torch.Tensor, pos: torch.Tensor, t: torch.Tensor,
                edge_index: torch.Tensor | None = None) -> torch.Tensor:
        batch, n = u.shape
        if edge_index is None:
            edge_index = knn_graph(pos.detach(), self.neighbours)
        uu = u.reshape(-1, 1)
        pp = pos.reshape(-1, 2)
        tt = t[:, None].expand(batch, n).reshape(-1, 1).to(u.dtype)
        h = self.encoder(torch.cat((uu, pp, tt), dim=-1))
        for layer in self.layers:
            h = layer(h, uu, pp, tt, edge_index)
        return self.decoder(h).reshape(batch, n)


class LearnableInterpolation(nn.Module):
    """Learnable interpolation (Hu et al. 2024, eq. 7): the value at a query point is
    ``sum_j w_j u_j`` over its ``neighbours`` nearest source nodes, ``w = softmax(MLP(x_j - x_q,
    |x_j - x_q|))`` with offsets in units of ``spacing``.

    ``exact_linear`` (our addition): the weights are then corrected to reproduce linear
    functions exactly, ``w'_j = w_j (1 + (d_j - dbar) . lambda)`` with ``d_j`` the offsets,
    ``dbar = sum_j w_j d_j`` and ``lambda = -C^{-1} dbar``, ``C`` the ``w``-weighted covariance
    of the offsets (a local linear regression around the softmax weights): ``sum w' = 1`` and
    ``sum w' d = 0``. Softmax weights that depend on each offset alone cannot do this for
    every neighbourhood (pre-training alone left a 4 % error on linear functions).

    Shapes: ``forward(values (B, N), source (B, N, 2), query (B, Q, 2)) -> (B, Q)``.
    """

    def __init__(self, neighbours: int = 30, hidden: int = 64, spacing: float = 1 / 47,
                 exact_linear: bool = True):
        super().__init__()
        self.neighbours, self.spacing, self.exact_linear = neighbours, spacing, exact_linear
        self.net = _mlp([3, hidden, hidden, 1], act=nn.Tanh)

    def forward(self, values: torch.Tensor, source: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        index = knn_indices(source.detach(), query.detach(), self.neighbours)  # (B, Q, k)
        b = torch.arange(values.shape[0], device=values.device)[:, None, None]
        offset = (source[b, index] - query[:, :, None, :]) / self.spacing  # (B, Q, k, 2)
        dist = offset.norm(dim=-1, keepdim=True)
        weights = torch.softmax(self.net(torch.cat((offset, dist), dim=-1))[..., 0], dim=-1)
        if self.exact_linear:
            mean = (weights[..., None] * offset).sum(-2)  # (B, Q, 2)
            centred = offset - mean[..., None, :]
            cov = torch.einsum("bqk,bqki,bqkj->bqij", weights, centred, centred)
            cov = cov + 1e-6 * torch.eye(2, dtype=cov.dtype, device=cov.device)
            lam = -torch.linalg.solve(cov, mean[..., None])[..., 0]  # (B, Q, 2)
            weights = weights * (1 + (centred * lam[..., None, :]).sum(-1))
        return (weights * values[b, index]).sum(-1)


class _ResidualCNN(nn.Module):
    def __init__(self, hidden: int = 16):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, hidden, 3, padding=1), nn.SiLU(),
                                 nn.Conv2d(hidden, hidden, 3, padding=1), nn.SiLU(),
                                 nn.Conv2d(hidden, 1, 3, padding=1))

    def forward(self, u):
        return self.net(u[:, None])[:, 0]


def _check(u: torch.Tensor, size: int, who: str):
    if u.ndim != 3 or u.shape[1:] != (size, size):
        raise ValueError(f"{who}: `u` must be (batch, {size}, {size}), got {tuple(u.shape)}")


@register_model("gnn-uniform")
class UniformGNN(nn.Module):
    """The uniform-mesh GNN baseline (MP-PDE on the grid): ``u_next = u + dt_scale * G(u)``.

    Parameters
    ----------
    size : int
        Grid points per side.
    hidden, layers, neighbours : int
        GNN width, message-passing layers and k of the k-NN graph (paper: 128, 6, 35).
    dt_scale : float
        Scale of the predicted increment (the stored time step).

    Shapes: ``forward(u (B, n, n), t (B,) optional) -> (B, n, n)``.
    """

    def __init__(self, size: int = 48, hidden: int = 128, layers: int = 6, neighbours: int = 35,
                 dt_scale: float = 1.0):
        super().__init__()
        self.size, self.dt_scale = size, dt_scale
        self.gnn = GNNProcessor(hidden, layers, neighbours)

    def forward(self, u: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        _check(u, self.size, "UniformGNN")
        batch = u.shape[0]
        t = torch.zeros(batch, dtype=u.dtype, device=u.device) if t is None else t
        xi = uniform_mesh(self.size, dtype=u.dtype, device=u.device).reshape(1, -1, 2).expand(batch, -1, -1)
        edges = uniform_graph(self.size, self.gnn.neighbours, batch, u.device)
        du = self.gnn(u.reshape(batch, -1), xi, t, edges)
        return u + self.dt_scale * du.reshape(u.shape)


@register_model("mmpde")
class MMPDE(nn.Module):
    """MM-PDE (Hu et al. 2024, figure 1b): a uniform-grid GNN branch, a moved-mesh GNN branch
    between learnable interpolations, and a residual CNN; the mesh mover is frozen.

    Parameters
    ----------
    size : int
        Grid points per side.
    hidden, layers, neighbours : int
        Width, layers and k of both GNNs (paper: 128, 6, 35).
    interpolation_neighbours, interpolation_hidden : int
        Source nodes per query and MLP width of the learnable interpolations (paper: 30).
    exact_linear : bool
        Correct the interpolation weights to reproduce linear functions exactly
        (:class:`LearnableInterpolation`; not in the paper).
    mover : dict
        Constructor arguments of the :class:`~pdekit.models.mesh_mover.DataFreeMeshMover`
        (its weights come with the checkpoint, or from a mover checkpoint before training).
    dt_scale : float
        Scale of the predicted increment.

    Shapes: ``forward(u (B, n, n), t (B,) optional) -> (B, n, n)``.
    """

    def __init__(self, size: int = 48, hidden: int = 128, layers: int = 6, neighbours: int = 35,
                 interpolation_neighbours: int = 30, interpolation_hidden: int = 64,
                 mover: dict | None = None, dt_scale: float = 1.0, exact_linear: bool = True):
        super().__init__()
        self.size, self.dt_scale = size, dt_scale
        self.uniform_branch = GNNProcessor(hidden, layers, neighbours)
        self.moved_branch = GNNProcessor(hidden, layers, neighbours)
        spacing = 1.0 / (size - 1)
        self.interpolate_in = LearnableInterpolation(interpolation_neighbours, interpolation_hidden, spacing,
                                                     exact_linear)
        self.interpolate_out = LearnableInterpolation(interpolation_neighbours, interpolation_hidden, spacing,
                                                      exact_linear)
        self.residual = _ResidualCNN()
        self.mover = DataFreeMeshMover(**{"size": size, **(mover or {})})
        self.mover.requires_grad_(False)

    def moved_mesh(self, u: torch.Tensor) -> torch.Tensor:
        """The frozen mover's nodes for ``u``: ``(B, n * n, 2)``."""
        return self.mover.move(u.detach()).reshape(u.shape[0], -1, 2)

    def forward(self, u: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        _check(u, self.size, "MMPDE")
        batch = u.shape[0]
        t = torch.zeros(batch, dtype=u.dtype, device=u.device) if t is None else t
        xi = uniform_mesh(self.size, dtype=u.dtype, device=u.device).reshape(1, -1, 2).expand(batch, -1, -1)
        flat = u.reshape(batch, -1)
        x = self.moved_mesh(u)
        u_moved = self.interpolate_in(flat, xi, x)
        du_moved = self.moved_branch(u_moved, x, t)
        edges = uniform_graph(self.size, self.uniform_branch.neighbours, batch, u.device)
        du = self.uniform_branch(flat, xi, t, edges) + self.interpolate_out(du_moved, x, xi)
        du = du.reshape(u.shape)
        return u + self.dt_scale * (du + self.residual(u))

    def train(self, mode: bool = True):
        super().train(mode)
        self.mover.eval()  # frozen
        return self
