"""The data-free mesh mover, MM-PDE and the uniform-mesh GNN: the Monge-Ampere residual of an
exact map, boundary nodes, graph construction, the learnable interpolation, shapes/backward."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from pdekit.classical.moving_mesh import gradient_monitor, uniform_mesh
from pdekit.models.mesh_mover import (
    DataFreeMeshMover,
    cosine_coefficients,
    mesh_mover_loss,
    monge_ampere_residual,
    monitor_mean,
    potential_derivatives,
)
from pdekit.models.mmpde import MMPDE, UniformGNN, knn_graph, knn_indices, uniform_graph
from pdekit.train.tasks.mesh_movers import pretrain_interpolation

B_MAP = 0.5
TINY_MOVER = {"channels": [4, 4, 4, 4], "width": 16, "trunk": [16], "head": [16], "frequencies": 4,
              "alpha": 1.0}


class _ExactPotential(nn.Module):
    """phi(xi) = sum_d b cos(2 pi xi_d) / (4 pi^2): x_d = xi_d - b sin(2 pi xi_d) / (2 pi)."""

    def forward(self, u, xi):
        return (B_MAP * torch.cos(2 * math.pi * xi) / (4 * math.pi**2)).sum(-1)


def _inverse_map(x: torch.Tensor) -> torch.Tensor:
    xi = x.clone()
    for _ in range(50):  # Newton on xi - b sin(2 pi xi) / (2 pi) = x
        f = xi - B_MAP * torch.sin(2 * math.pi * xi) / (2 * math.pi) - x
        xi = xi - f / (1 - B_MAP * torch.cos(2 * math.pi * xi))
    return xi


def test_monge_ampere_residual_of_an_exact_map_is_zero():
    # M(x) = prod_d 1 / (1 - b cos(2 pi xi_d(x))) makes M(x(xi)) det(I + Hess phi) = 1 = theta
    g = torch.linspace(0, 1, 513, dtype=torch.float64)
    m1 = 1 / (1 - B_MAP * torch.cos(2 * math.pi * _inverse_map(g)))
    monitor = (m1[:, None] * m1[None, :])[None]
    xi = torch.rand(1, 200, 2, dtype=torch.float64)
    _, grad, hess = potential_derivatives(_ExactPotential(), None, xi)
    residual = monge_ampere_residual(grad, hess, monitor, torch.ones(1, dtype=torch.float64), xi)
    assert float(residual.detach().abs().max()) < 2e-4  # bilinear sampling of the monitor
    wrong = monge_ampere_residual(grad, hess, monitor, torch.full((1,), 1.2, dtype=torch.float64), xi)
    assert float(wrong.abs().min()) > 0.1


def test_mover_shapes_backward_and_boundary():
    torch.manual_seed(0)
    model = DataFreeMeshMover(16, **TINY_MOVER)
    u = torch.randn(3, 16, 16)
    assert model(u, torch.rand(3, 5, 2)).shape == (3, 5)
    terms = mesh_mover_loss(model, u, points=32, boundary_points=4)
    assert terms["loss"].shape == (3,)
    terms["loss"].mean().backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []
    assert float(terms["boundary"].max()) < 1e-12  # cosine trunk: zero normal derivative
    with torch.no_grad():  # a large random potential: boundary nodes still on their walls
        model.head[-1].weight.mul_(100)
    mesh = model.move(u)
    assert mesh.shape == (3, 16, 16, 2)
    assert float(mesh[:, 0, :, 0].abs().max()) == 0 and float((mesh[:, -1, :, 0] - 1).abs().max()) == 0
    assert float(mesh[:, :, 0, 1].abs().max()) == 0 and float((mesh[:, :, -1, 1] - 1).abs().max()) == 0
    raw = DataFreeMeshMover(16, channels=[4, 4, 4, 4], width=16, trunk=[16], head=[16])  # paper's trunk
    mesh_mover_loss(raw, u, points=16, boundary_points=4)["loss"].mean().backward()
    assert all(p.grad is not None for p in raw.parameters())


def test_knn_graph_edge_counts_and_neighbours():
    xi = uniform_mesh(6).reshape(1, -1, 2).expand(2, -1, -1).contiguous()
    edges = knn_graph(xi, 4)
    assert edges.shape == (2, 2 * 36 * 4)
    assert bool((edges[0] != edges[1]).all())  # no self loops
    assert int(edges[1].bincount().min()) == 4 and int(edges[1].bincount().max()) == 4
    node = 2 * 6 + 3  # interior: its 4 nearest are the axis neighbours
    sources = set(edges[0][edges[1] == node].tolist())
    assert sources == {node - 6, node + 6, node - 1, node + 1}
    assert set(edges[0][edges[1] == 36 + node].tolist()) == {36 + s for s in sources}  # second graph
    idx = knn_indices(xi[:1], torch.tensor([[[0.01, 0.02]]]), 3)
    assert set(idx[0, 0].tolist()) == {0, 1, 6}



def test_knn_tree_and_brute_force_agree():
    torch.manual_seed(0)
    pos = torch.rand(2, 400, 2, dtype=torch.float64)
    query = torch.rand(2, 50, 2, dtype=torch.float64)
    for k, exclude in ((1, False), (7, False), (7, True)):
        q = pos if exclude else query
        tree = knn_indices(pos, q, k, exclude_self=exclude, method="tree")
        brute = knn_indices(pos, q, k, exclude_self=exclude, method="brute")
        assert tree.dtype == brute.dtype == torch.long
        torch.testing.assert_close(tree.sort(dim=-1).values, brute.sort(dim=-1).values)
    # a duplicated point: each copy keeps k neighbours other than itself
    dup = torch.cat((pos[:, :1], pos), dim=1)
    idx = knn_indices(dup, dup, 3, exclude_self=True, method="tree")
    assert bool((idx != torch.arange(401)[None, :, None]).all())
    assert {0, 1} <= set(idx[0, 0].tolist() + idx[0, 1].tolist())  # the copies see each other
    with pytest.raises(ValueError, match="method must be"):
        knn_indices(pos, query, 3, method="ball")

def test_solvers_shapes_backward_no_unused_parameters():
    torch.manual_seed(0)
    u = torch.randn(2, 12, 12)
    for model in (UniformGNN(12, hidden=8, layers=2, neighbours=4),
                  MMPDE(12, hidden=8, layers=2, neighbours=4, interpolation_neighbours=6,
                        interpolation_hidden=8, mover=TINY_MOVER)):
        out = model(u, torch.zeros(2))
        assert out.shape == u.shape
        out.square().mean().backward()
        trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        assert trainable and [n for n, p in trainable if p.grad is None] == []
    assert all(not p.requires_grad for p in model.mover.parameters())  # frozen mover


def _linear_interpolation_error(model, x, grid) -> float:
    """Max abs error of both interpolations on 0.3 + 2 x - y (values in [-0.7, 2.3])."""
    def lin(p):
        return 0.3 + 2 * p[..., 0] - p[..., 1]

    with torch.no_grad():
        fwd = model.interpolate_in(lin(grid), grid, x) - lin(x)
        back = model.interpolate_out(lin(x), x, grid) - lin(grid)
    return float(torch.cat((fwd, back)).abs().max())


def _moved_model():
    torch.manual_seed(0)
    model = MMPDE(12, hidden=8, layers=1, neighbours=4, interpolation_neighbours=8,
                  interpolation_hidden=16, mover=TINY_MOVER)
    with torch.no_grad():
        model.mover.head[-1].weight.mul_(30)  # a visibly moved mesh
    g = torch.linspace(0, 1, 12)
    states = torch.stack([torch.sin(3 * g[:, None] + k) + torch.cos(2 * k * g[None, :]) for k in range(8)])
    x = model.moved_mesh(states[:2])
    grid = uniform_mesh(12).reshape(1, -1, 2).expand(2, -1, -1)
    assert float((x - grid).abs().max()) > 0.1
    return model, states, x, grid


def test_learnable_interpolation_is_exact_on_linear_functions():
    model, _, x, grid = _moved_model()
    assert _linear_interpolation_error(model, x, grid) < 1e-4  # any weights: the correction
    plain = MMPDE(12, hidden=8, layers=1, neighbours=4, interpolation_neighbours=8,
                  interpolation_hidden=16, mover=TINY_MOVER, exact_linear=False)
    plain.load_state_dict(model.state_dict())
    assert _linear_interpolation_error(plain, x, grid) > 1e-2  # softmax weights alone are not


@pytest.mark.slow
def test_learnable_interpolation_reproduces_linear_functions_after_pretraining():
    model, states, x, grid = _moved_model()
    losses = pretrain_interpolation(model, states, steps=200, batch=2, lr=3e-3)
    assert sum(losses[-20:]) < 0.5 * sum(losses[:20])  # the reconstruction improves
    # linear functions (range 3) reproduced to float32 round-off after pre-training
    assert _linear_interpolation_error(model, x, grid) < 1e-4


def test_knn_graph_on_the_inputs_device(device):
    pos = torch.rand(2, 300, 2, device=device)
    edges = knn_graph(pos, 6)
    assert edges.device == pos.device and edges.shape == (2, 2 * 300 * 6)
    reference = knn_graph(pos.cpu().double(), 6)
    torch.testing.assert_close(edges.cpu().sort(dim=1).values, reference.sort(dim=1).values)
    graph = uniform_graph(8, 4, 3, device)
    assert graph.device == pos.device and graph.shape == (2, 3 * 64 * 4)
    assert uniform_graph(8, 4, 3, device) is graph  # cached per device


def test_cosine_basis_mover():
    torch.manual_seed(0)
    model = DataFreeMeshMover(16, channels=[4, 4, 4, 4], width=16, alpha=1.0, basis=6,
                              branch_input="monitor")
    u = torch.randn(3, 16, 16)
    mesh = model.move(u)
    torch.testing.assert_close(mesh, uniform_mesh(16)[None].expand(3, -1, -1, -1))  # identity at start
    terms = mesh_mover_loss(model, u, points=32, boundary_points=4)
    terms["loss"].mean().backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []
    with torch.no_grad():
        model.coefficients.bias.normal_(0, 0.5)
    assert float(mesh_mover_loss(model, u, points=32, boundary_points=4)["boundary"].max()) < 1e-10
    mesh = model.move(u)
    assert mesh.shape == (3, 16, 16, 2) and float((mesh - uniform_mesh(16)).abs().max()) > 1e-3


def test_cosine_coefficients_recover_a_cosine_series():
    # the trapezoid rule is exact for products of the cosine modes on the nodes (DCT-I)
    torch.manual_seed(0)
    n, k = 17, 6
    coef = torch.randn(2, k, k, dtype=torch.float64)
    s = torch.linspace(0, 1, n, dtype=torch.float64)
    c = torch.cos(torch.pi * s[:, None] * torch.arange(k, dtype=torch.float64))
    x = torch.einsum("bkl,ik,jl->bij", coef, c, c)
    torch.testing.assert_close(cosine_coefficients(x, k, normalized=True), coef, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_field_mover_starts_at_the_linearised_map(dtype):
    # Laplacian phi = f = theta / M - 1 (projected on the modes, mean removed) at any point
    torch.manual_seed(0)
    model = DataFreeMeshMover(16, channels=[4, 4, 4], alpha=1.0, basis=8, branch_input="monitor",
                              branch="field").to(dtype)
    u = torch.randn(2, 16, 16, dtype=dtype)
    xi = torch.rand(2, 40, 2, dtype=dtype)
    _, _, hess = potential_derivatives(model, u, xi, create_graph=False)
    monitor = gradient_monitor(u, alpha=1.0)
    x = monitor_mean(monitor)[:, None, None] / monitor - 1
    f = cosine_coefficients(x, 8, normalized=True)
    f[:, 0, 0] = 0
    k = torch.arange(8, dtype=dtype)
    expected = torch.einsum("bkl,bpk,bpl->bp", f, torch.cos(torch.pi * xi[..., 0, None] * k),
                            torch.cos(torch.pi * xi[..., 1, None] * k))
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(hess[..., 0, 0] + hess[..., 1, 1], expected, rtol=tol, atol=tol)


def test_field_mover_shapes_backward_boundary_and_closed_form_mesh():
    torch.manual_seed(0)
    model = DataFreeMeshMover(16, channels=[4, 4, 4], alpha=1.0, basis=6, branch_input="monitor",
                              branch="field")
    u = torch.randn(3, 16, 16)
    terms = mesh_mover_loss(model, u, points=32, boundary_points=4)
    terms["loss"].mean().backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []
    assert float(terms["boundary"].max()) < 1e-10
    with torch.no_grad():
        model.field[-1].weight.normal_(0, 0.1)
    for mover in (model, DataFreeMeshMover(16, channels=[4, 4, 4, 4], width=16, alpha=1.0, basis=6,
                                           branch_input="monitor")):
        if mover is not model:
            with torch.no_grad():
                mover.coefficients.bias.normal_(0, 0.5)
        xi = uniform_mesh(16).reshape(1, -1, 2).expand(3, -1, -1)
        _, grad, _ = potential_derivatives(mover, u, xi, hessian=False, create_graph=False)
        mesh = mover.move(u)  # grad phi on the nodes in closed form
        reference = (xi + grad).reshape(3, 16, 16, 2).clamp(0, 1)
        assert float((mesh - uniform_mesh(16)).abs().max()) > 1e-3
        torch.testing.assert_close(mesh[:, 1:-1, 1:-1], reference[:, 1:-1, 1:-1])
    with pytest.raises(ValueError, match="branch='field' needs basis"):
        DataFreeMeshMover(16, basis=0, branch_input="monitor", branch="field")
    with pytest.raises(ValueError, match="branch must be"):
        DataFreeMeshMover(16, branch="unet")


def test_field_mover_training_reduces_the_monge_ampere_residual():
    torch.manual_seed(0)
    s = torch.linspace(0, 1, 24)
    fronts = torch.stack([torch.tanh((s[:, None] + a * s[None, :] - 0.5) / 0.04) for a in (0.3, 0.6, 1.0)])
    model = DataFreeMeshMover(24, channels=[8, 8, 8], alpha=1.0, basis=12, branch_input="monitor",
                              branch="field")
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    def residual():
        torch.manual_seed(1)
        return float(mesh_mover_loss(model, fronts, points=256, boundary_points=4)["residual"].mean())

    start = residual()
    for _ in range(60):
        opt.zero_grad()
        mesh_mover_loss(model, fronts, points=64, boundary_points=4)["loss"].mean().backward()
        opt.step()
    assert residual() < 0.5 * start
