import pytest
import torch

import pdekit
from pdekit.models import LatentSpectralModel, UNet, save_checkpoint
from pdekit.models.lsm import NeuralSpectralBlock
from pdekit.train import Trainer


def _unused(model, x):
    model.zero_grad()
    model(x).square().mean().backward()
    return [n for n, p in model.named_parameters() if p.grad is None]


@pytest.mark.parametrize("shape", [(17, 17), (20, 13), (29, 31)])
def test_lsm_and_unet_shapes_on_odd_and_non_square_grids(shape):
    torch.manual_seed(0)
    lsm = LatentSpectralModel(in_channels=2, out_channels=3, width=8, patch_size=2, heads=2)
    unet = UNet(in_channels=2, out_channels=3, width=8)
    x = torch.randn(2, 2, *shape)
    assert lsm(x).shape == (2, 3, *shape)
    assert unet(x).shape == (2, 3, *shape)


@pytest.mark.parametrize("size", [43, 85, 141])
def test_lsm_pads_the_darcy_grids_of_the_resolution_study(size):
    # patch 6: 43 -> 96, 85 -> 96, 141 -> 192 (multiples of 16 p), cropped back
    model = LatentSpectralModel(width=8, patch_size=6, heads=8).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 1, size, size)).shape == (1, 1, size, size)


def test_backward_reaches_every_parameter():
    torch.manual_seed(1)
    x = torch.randn(2, 1, 12, 12)
    assert _unused(LatentSpectralModel(width=8, patch_size=3, heads=4), x) == []
    assert _unused(UNet(width=8), x) == []


def test_spectral_block_matches_a_plain_per_patch_computation():
    torch.manual_seed(2)
    block = NeuralSpectralBlock(width=4, num_basis=3, patch_size=2, num_tokens=2, heads=2)
    x = torch.randn(1, 4, 4, 4)
    out = block(x)
    # patches are independent: changing one patch leaves the other patches' outputs alone
    y = x.clone()
    y[..., :2, :2] += 1.0
    changed = block(y)
    torch.testing.assert_close(changed[..., 2:, :], out[..., 2:, :])
    torch.testing.assert_close(changed[..., :2, 2:], out[..., :2, 2:])
    assert not torch.allclose(changed[..., :2, :2], out[..., :2, :2])
    # the basis frequencies k / K are a buffer: they move with the module
    assert "frequencies" in dict(block.named_buffers())
    torch.testing.assert_close(block.frequencies, torch.tensor([0.0, 1 / 3, 2 / 3]))
    assert block.to(torch.float64).frequencies.dtype == torch.float64


def _stray_tensors(model):
    """Tensors held as plain attributes (they would not move with .to())."""
    return [f"{name}.{key}" for name, module in model.named_modules()
            for key, value in vars(module).items() if isinstance(value, torch.Tensor)]


@pytest.mark.parametrize("cls", [LatentSpectralModel, UNet])
def test_every_tensor_moves_with_to(cls):
    model = cls(width=8, **({"patch_size": 2, "heads": 2} if cls is LatentSpectralModel else {}))
    assert _stray_tensors(model) == []
    model = model.to(torch.float64)
    floating = [t for t in [*model.parameters(), *model.buffers()] if t.is_floating_point()]
    assert floating and all(t.dtype == torch.float64 for t in floating)
    assert model(torch.randn(2, 1, 10, 9, dtype=torch.float64)).dtype == torch.float64


@pytest.mark.parametrize("cls", [LatentSpectralModel, UNet])
def test_forward_and_backward_on_each_device(cls, device):
    # `device`: the CPU, and CUDA when present (skipped without a GPU)
    torch.manual_seed(4)
    model = cls(width=8, **({"patch_size": 2, "heads": 2} if cls is LatentSpectralModel else {})).to(device)
    assert all(t.device.type == device.type for t in [*model.parameters(), *model.buffers()])
    out = model(torch.randn(2, 1, 11, 14, device=device))
    assert out.device.type == device.type and out.shape == (2, 1, 11, 14)
    out.square().mean().backward()
    assert all(p.grad is not None and p.grad.device.type == device.type for p in model.parameters())


def test_lsm_checkpoint_round_trip(tmp_path):
    model = LatentSpectralModel(width=8, patch_size=2, heads=2).eval()
    loaded = pdekit.load(save_checkpoint(tmp_path / "lsm.pt", model), expected="lsm")
    x = torch.randn(1, 1, 10, 10)
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


class _Smooth(torch.utils.data.Dataset):
    """u = a smoothed version of a (a fixed linear operator on 16x16 fields)."""

    def __init__(self, count, seed):
        g = torch.Generator().manual_seed(seed)
        self.a = torch.randn(count, 16, 16, generator=g)
        kernel = torch.ones(1, 1, 5, 5) / 25
        self.u = torch.nn.functional.conv2d(self.a[:, None], kernel, padding=2)[:, 0]
        self.field_info = {"a": {"role": "input"}, "u": {"role": "output"}}

    def __len__(self):
        return len(self.a)

    def __getitem__(self, i):
        return {"a": self.a[i], "u": self.u[i]}


def test_short_lsm_training_reduces_the_error():
    torch.manual_seed(3)
    model = LatentSpectralModel(width=8, patch_size=1, heads=2, num_tokens=2)
    trainer = Trainer(model, _Smooth(32, 0), _Smooth(16, 1), epochs=15, batch_size=8, lr=3e-3,
                      normalization="field", progress=False)
    before = trainer.evaluate()["test_relative_l2"]
    after = trainer.fit()[-1]["test_relative_l2"]
    assert after < before / 3, (before, after)


def test_unet_trains_when_the_last_batch_would_hold_one_sample():
    # 16x16 pools to a 1x1 bottleneck, where batch norm cannot train on a single sample; the
    # Trainer leaves such a last batch out of each epoch (33 = 4 x 8 + 1)
    torch.manual_seed(0)
    trainer = Trainer(UNet(width=4), _Smooth(33, 0), _Smooth(8, 1), epochs=2, batch_size=8,
                      normalization="field", progress=False)
    history = trainer.fit()
    assert len(history) == 2 and all(h["train_loss"] > 0 for h in history)
    assert trainer.batch_norm
    # a model without batch norm trains on every sample
    plain = Trainer(torch.nn.Conv2d(1, 1, 3, padding=1), _Smooth(33, 0), None, epochs=1,
                    batch_size=8, normalization="field", progress=False)
    assert not plain.batch_norm
