"""The DCDM network, its loss and its training data (Kaneda et al. 2023)."""

import numpy as np
import pytest
import scipy.sparse.linalg as spla
import torch

from pdekit.classical import poisson
from pdekit.data.ritz import RitzVectorParameters, RitzVectorProblem, ritz_basis, training_operator
from pdekit.models import DCDMNet
from pdekit.models.dcdm import dcdm_loss


def test_parameter_counts_match_the_paper():
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(DCDMNet(dim=3)) == 97_457  # the 64^3 model: "about 97.5k"
    assert count(DCDMNet(dim=3, blocks=(3, 5, 3))) == 152_881  # the 128^3 model: "about 153k"
    conv = lambda m: sum(isinstance(x, torch.nn.Conv3d) and x.kernel_size == (3, 3, 3)  # noqa: E731
                         for x in m.modules())
    assert conv(DCDMNet(dim=3)) == 15 and conv(DCDMNet(dim=3, blocks=(3, 5, 3))) == 23


@pytest.mark.parametrize("shape", [(9, 8, 7), (16, 16, 16), (5, 11, 6)])
def test_shapes_on_odd_grids_and_solid_cells_stay_zero(shape):
    torch.manual_seed(0)
    net = DCDMNet(dim=3, channels=4, blocks=(1, 1, 1))
    r = torch.randn(2, *shape)
    solid = torch.rand(2, *shape) < 0.2
    out = net(r, solid)
    assert out.shape == (2, *shape)
    assert torch.all(out[solid] == 0)
    # solid input values are ignored
    r2 = r.clone()
    r2[solid] = 7.0
    torch.testing.assert_close(net(r2, solid), out)
    assert DCDMNet(dim=2, channels=4)(torch.randn(3, 13, 10)).shape == (3, 13, 10)


def test_mask_input_lets_the_network_see_the_domain(dtype):
    torch.manual_seed(2)
    plain, seeing = DCDMNet(dim=2, channels=4), DCDMNet(dim=2, channels=4, mask_input=True)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(seeing) - count(plain) == 4 * 9  # one more input channel of the 3x3 lift
    seeing = seeing.to(dtype)
    r = torch.randn(2, 12, 10, dtype=dtype)
    solid = torch.zeros(2, 12, 10, dtype=torch.bool)
    solid[:, 5:8, 0:3] = True
    r[solid] = 0
    out = seeing(r, solid)
    assert out.shape == r.shape and out.dtype == dtype and torch.all(out[solid] == 0)
    # the same residual (zero on the obstacle) near a solid block and near fluid cells:
    # the one-channel network cannot tell them apart, the mask-input one can
    plain = plain.to(dtype)
    torch.testing.assert_close(plain(r, solid)[~solid], plain(r)[~solid])
    assert not torch.allclose(seeing(r, solid)[~solid], seeing(r)[~solid])
    # a grid-shaped mask serves the whole batch
    torch.testing.assert_close(seeing(r, solid[0]), out)
    seeing(r, solid).square().mean().backward()
    assert [n for n, p in seeing.named_parameters() if p.grad is None] == []


def test_backward_reaches_every_parameter_in_float32_and_float64(dtype):
    torch.manual_seed(1)
    net = DCDMNet(dim=2, channels=4, blocks=(1, 2, 1)).to(dtype)
    net(torch.randn(2, 12, 10, dtype=dtype)).square().mean().backward()
    assert [n for n, p in net.named_parameters() if p.grad is None] == []


def test_levels_nest_the_pattern_and_one_level_is_the_papers_network(dtype):
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    pair = 2 * (16 * 16 * 27 + 16)  # two 3x3x3 convolutions, 16 -> 16 channels, with biases
    # each extra level: blocks[0] pairs before its pool and blocks[2] after its upsampling
    assert count(DCDMNet(dim=3, levels=3)) == 97_457 + 2 * (2 + 2) * pair
    # levels=1 has exactly the paper's parameters, so its checkpoints load unchanged
    assert DCDMNet(dim=3).state_dict().keys() == DCDMNet(dim=3, levels=1).state_dict().keys()
    torch.manual_seed(3)
    net = DCDMNet(dim=2, channels=4, blocks=(1, 1, 1), levels=3).to(dtype)
    for shape in [(13, 10), (8, 8), (5, 3)]:  # odd sizes, and grids smaller than 2**levels
        r = torch.randn(2, *shape, dtype=dtype)
        solid = torch.rand(*shape) < 0.2
        out = net(r, solid)
        assert out.shape == r.shape and out.dtype == dtype and torch.all(out[:, solid] == 0)
    # the coarsest level reaches across the grid: a residual in one corner moves the far corner,
    # which the one-level network's receptive field does not reach
    shallow = DCDMNet(dim=2, channels=4, blocks=(1, 1, 1), levels=1).to(dtype)
    r = torch.zeros(1, 24, 24, dtype=dtype)
    r[0, 0, 0] = 1.0
    with torch.no_grad():
        far = lambda m: float((m(r) - m(torch.zeros_like(r)))[0, -3:, -3:].abs().max())  # noqa: E731
        assert far(shallow) == 0.0 and far(net) > 0.0
    net(torch.randn(2, 12, 10, dtype=dtype)).square().mean().backward()
    assert [n for n, p in net.named_parameters() if p.grad is None] == []
    for bad in (0, 1.5, -2):
        with pytest.raises(ValueError, match="`levels`"):
            DCDMNet(dim=2, levels=bad)


def test_loss_is_invariant_to_the_scale_of_the_output(dtype):
    A = poisson.operator((12, 10), bc="dirichlet", dtype=dtype)
    g = torch.Generator().manual_seed(0)
    b = torch.randn(3, 12, 10, generator=g, dtype=torch.float64).to(dtype)
    b = b / torch.linalg.vector_norm(b.flatten(1), dim=1)[:, None, None]
    q = torch.randn(3, 12, 10, generator=g, dtype=torch.float64).to(dtype)
    loss = dcdm_loss(A.apply_functional, b, q)
    tol = 1e-4 if dtype == torch.float32 else 1e-12
    for scale in (1e-3, 2.5, -7.0, 1e4):
        torch.testing.assert_close(dcdm_loss(A.apply_functional, b, scale * q), loss, rtol=tol, atol=tol)
    # and zero at q = A^-1 b (any scale)
    S = A.to_scipy()
    exact = torch.stack([torch.as_tensor(spla.spsolve(S.tocsc(), bi.reshape(-1).double().numpy()))
                         for bi in b]).reshape(b.shape).to(dtype)
    assert float(dcdm_loss(A.apply_functional, b, -3 * exact).max()) < 10 * tol


def test_ritz_values_match_eigsh_and_samples_are_unit_and_reproducible():
    params = RitzVectorParameters(shape=(14, 12), bc=(("dirichlet", "neumann"), "neumann"),
                                  lanczos_steps=120, theta=5)
    vectors, boosted = ritz_basis(params)
    assert boosted == 65 and vectors.shape[1] == 14 * 12
    A, _ = training_operator(params)
    S = A.to_scipy()
    lowest = np.sort(spla.eigsh(S.tocsc(), k=6, sigma=0, which="LM")[0])
    V = vectors.numpy()
    rayleigh = np.sort([v @ (S @ v) for v in V[:6]])
    np.testing.assert_allclose(rayleigh, lowest, rtol=1e-8)
    highest = np.sort(spla.eigsh(S, k=3, which="LA")[0])
    rayleigh_top = np.sort([v @ (S @ v) for v in V[-3:]])
    np.testing.assert_allclose(rayleigh_top, highest, rtol=1e-8)
    problem = RitzVectorProblem()
    one, _ = problem.sample(params, None, np.random.default_rng(3))
    two, _ = problem.sample(params, None, np.random.default_rng(3))
    assert np.linalg.norm(one["b"]) == pytest.approx(1.0)
    np.testing.assert_array_equal(one["b"], two["b"])
    # the boost leans the samples towards the low end of the spectrum
    coefficients = V @ one["b"].reshape(-1)
    assert np.abs(coefficients[:boosted]).mean() > 3 * np.abs(coefficients[boosted:]).mean()


def test_ritz_layouts_give_each_sample_its_own_matrix_and_unseen_test_layouts():
    params = RitzVectorParameters(shape=(16, 16), bc=(("dirichlet", "neumann"), "neumann"),
                                  obstacle_fraction=[0.1, 0.3], layouts=3, lanczos_steps=60, theta=5)
    problem = RitzVectorProblem()
    layouts = [training_operator(params, j)[1].tobytes() for j in range(3)]
    masks = set(layouts)
    assert len(masks) == 3  # three different layouts, each with solid cells
    fractions = [training_operator(params, j)[1].mean() for j in range(3)]
    assert all(0.03 < f < 0.5 for f in fractions)
    seen = set()
    for seed in range(12):
        fields, _ = problem.sample(params, None, np.random.default_rng(seed))
        solid = fields["solid"].astype(bool)
        assert solid.tobytes() in masks
        seen.add(solid.tobytes())
        # b is a combination of that layout's own Ritz vectors
        vectors, _ = ritz_basis(params, layouts.index(solid.tobytes()))
        b = torch.as_tensor(fields["b"].reshape(-1))
        residual = b - vectors.T @ (vectors @ b)
        assert float(torch.linalg.vector_norm(residual)) < 1e-8
        assert np.all(fields["b"][solid] == 0)
    assert len(seen) > 1
    test = problem.for_split(params, "test")
    assert test != params and problem.for_split(params, "train") is params
    assert not {training_operator(test, j)[1].tobytes() for j in range(3)} & masks
    # one matrix: the split changes nothing (train and test vectors share the paper's matrix)
    single = RitzVectorParameters(shape=(16, 16), bc=(("dirichlet", "neumann"), "neumann"), lanczos_steps=60)
    assert problem.for_split(single, "test") is single
    with pytest.raises(ValueError, match="layouts"):
        RitzVectorParameters(shape=(16, 16), bc="dirichlet", lanczos_steps=60, obstacle_fraction=[0.1, 0.3])
    with pytest.raises(ValueError, match="layout"):
        training_operator(params, 3)
