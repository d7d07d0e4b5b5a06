import pytest
import torch

from pdekit.models import MODELS, DeepONet, MultiONet, build_model
from pdekit.models.deeponet import grid_points


def _all_parameters_get_gradients(model, *inputs):
    model.zero_grad()
    out = model(*inputs)
    out.square().mean().backward()
    return [name for name, p in model.named_parameters() if p.grad is None]


def test_deeponet_per_sample_and_cartesian_forms_agree():
    torch.manual_seed(0)
    model = DeepONet([100, 40, 40], [1, 40, 40])
    u, y = torch.randn(5, 100), torch.rand(7, 1)
    grid = model.cartesian(u, y)  # (B, P, 1)
    assert grid.shape == (5, 7, 1)
    # the per-sample form: one point per sample (the shipped checkpoint's call) ...
    pairs = model(u, y[3].expand(5, 1))
    assert pairs.shape == (5, 1)
    torch.testing.assert_close(pairs, grid[:, 3])
    # ... and several points per sample
    torch.testing.assert_close(model(u, y.expand(5, 7, 1)), grid)


def test_deeponet_is_the_branch_trunk_inner_product_plus_bias():
    torch.manual_seed(1)
    model = DeepONet([10, 16, 8], [2, 16, 8])
    assert torch.all(model.bias.detach() == 0)  # initialised at zero
    with torch.no_grad():
        model.bias.fill_(0.25)
    u, y = torch.randn(3, 10), torch.rand(4, 2)
    b, t = model.branch(u), model.trunk(y)
    assert (t >= 0).all()  # ReLU trunk: its last layer is activated too
    torch.testing.assert_close(model.cartesian(u, y)[..., 0], b @ t.T + 0.25)


def test_deeponet_field_mode_with_mlp_and_cnn_branches_and_several_outputs():
    torch.manual_seed(2)
    mlp = DeepONet([2 * 9 * 11, 32, 24], [2, 32, 24], outputs=3)
    out = mlp(torch.randn(4, 2, 9, 11))
    assert out.shape == (4, 3, 9, 11)
    # the field form evaluates the trunk at the grid nodes on [0, 1]^2 (C order)
    x = torch.randn(4, 2, 9, 11)
    torch.testing.assert_close(mlp(x), mlp.cartesian(x.flatten(1), grid_points((9, 11))).transpose(1, 2)
                               .reshape(4, 3, 9, 11))
    cnn = DeepONet([128, 64], [2, 64, 64], branch_type="cnn", grid_shape=(29, 29))
    assert cnn(torch.randn(2, 1, 29, 29)).shape == (2, 1, 29, 29)
    assert _all_parameters_get_gradients(cnn, torch.randn(2, 1, 29, 29)) == []
    assert _all_parameters_get_gradients(mlp, torch.randn(4, 2, 9, 11)) == []


def test_multionet_averages_per_layer_inner_products():
    torch.manual_seed(3)
    model = MultiONet(6, 1, [8, 8, 8])
    u, y = torch.randn(3, 6), torch.rand(5, 1)
    assert torch.all(model.cartesian(u, y) == 0)  # zero-initialised layer weights and bias
    with torch.no_grad():
        model.layer_weights.copy_(torch.tensor([0.5, -1.0, 2.0]))
        model.bias.fill_(0.1)
    bs, ts = model.branch.hidden_states(u), model.trunk.hidden_states(y)
    expected = sum(w * (b @ t.T) for w, b, t in zip([0.5, -1.0, 2.0], bs, ts, strict=True)) / 3 + 0.1
    torch.testing.assert_close(model.cartesian(u, y)[..., 0], expected)
    # only the last layer contributing: DeepONet's inner product
    last = MultiONet(6, 1, [8, 8, 8], layers=1)
    with torch.no_grad():
        last.layer_weights.fill_(1.0)
    b, t = last.branch(u), last.trunk(y)
    torch.testing.assert_close(last.cartesian(u, y)[..., 0], b @ t.T)


def test_multionet_shapes_backward_and_no_unused_parameters():
    model = MultiONet(2 * 7 * 7, 2, [12, 12], outputs=2)
    x = torch.randn(3, 2, 7, 7)
    assert model(x).shape == (3, 2, 7, 7)
    assert model(torch.randn(3, 98), torch.rand(3, 2)).shape == (3, 2)
    assert _all_parameters_get_gradients(model, x) == []


def test_every_registered_model_builds():
    examples = {"deeponet": {}, "multionet": {"branch_input": 4, "trunk_input": 1, "widths": [8, 8]}}
    for name in MODELS:
        model = build_model(name, **examples.get(name, {}))
        assert model.model_name == name


def test_bad_model_arguments_are_refused():
    with pytest.raises(ValueError, match="same width"):
        DeepONet([10, 20], [1, 30])
    with pytest.raises(ValueError, match="branch_type"):
        DeepONet(branch_type="rnn")
    with pytest.raises(ValueError, match="grid_shape"):
        DeepONet([64], [2, 64], branch_type="cnn")
    with pytest.raises(ValueError, match="layers"):
        MultiONet(4, 1, [8, 8], layers=3)
    with pytest.raises(ValueError, match="unknown model"):
        build_model("fno7d")
    with pytest.raises(ValueError, match="bad arguments"):
        build_model("deeponet", depth=3)
    with pytest.raises(ValueError, match="shared point set"):
        DeepONet()(torch.randn(4, 100), torch.rand(3, 1))
