"""VolumeConv3d: nn.Conv3d's results and gradients, oneDNN on the CPU for single small volumes."""

import pytest
import torch
from torch import nn
from torch.profiler import profile

from pdekit.models import DCDMNet
from pdekit.models.layers import VolumeConv3d


def _pair(dtype, **kw):
    torch.manual_seed(0)
    ours = VolumeConv3d(4, 5, 3, **kw).to(dtype)
    reference = nn.Conv3d(4, 5, 3, **kw).to(dtype)
    reference.load_state_dict(ours.state_dict())
    return ours, reference


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("options", [dict(padding=1), dict(padding=0, stride=2), dict(padding=2, dilation=2),
                                     dict(padding=1, bias=False), dict(padding="same")])
def test_matches_conv3d_values_and_gradients(dtype, options):
    ours, reference = _pair(dtype, **options)
    x = torch.randn(1, 4, 9, 10, 11, dtype=dtype, requires_grad=True)
    y, y_ref = ours(x), reference(x)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(y, y_ref, **tol)
    weights = torch.randn_like(y)
    grads = torch.autograd.grad((y * weights).sum(), [x, ours.weight])
    grads_ref = torch.autograd.grad((y_ref * weights).sum(), [x, reference.weight])
    for g, g_ref in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(g, g_ref, **tol)


def test_unbatched_input_and_state_dict_are_conv3d_ones():
    ours, reference = _pair(torch.float32, padding=1)
    x = torch.randn(4, 6, 6, 6)
    torch.testing.assert_close(ours(x), reference(x), rtol=1e-5, atol=1e-5)
    assert ours.state_dict().keys() == reference.state_dict().keys()


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="PyTorch built without oneDNN")
def test_a_single_small_volume_takes_onednn_where_conv3d_would_not():
    ours, reference = _pair(torch.float32, padding=1)
    x = torch.randn(1, 4, 16, 16, 16)  # 1 * 4 * 16 * 16 < 20480: nn.Conv3d's generic path

    def kernels(layer):
        with torch.no_grad(), profile() as prof:
            layer(x)
        return {event.key for event in prof.key_averages()}

    assert "aten::mkldnn_convolution" in kernels(ours)
    assert "aten::mkldnn_convolution" not in kernels(reference)


def test_the_3d_dcdm_network_is_built_of_them():
    net = DCDMNet(dim=3, channels=4)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv3d)]
    assert convs and all(isinstance(m, VolumeConv3d) for m in convs)
