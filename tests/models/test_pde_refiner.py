"""PDE-Refiner, its one-step baseline and the modern 1D U-Net: the noise schedule against the
spec's table, the refinement sampler with an exact denoiser, shapes, backward, periodicity."""

from __future__ import annotations

import math

import pytest
import torch

import pdekit
from pdekit.models import ModernUNet1d, OneStepUNet, PDERefiner, save_checkpoint
from pdekit.models.pde_refiner import refiner_schedule

SMALL = {"hidden": 8, "widths": (8, 16, 16), "blocks": 1}


def test_noise_schedule_matches_the_spec_table():
    # PDE-Refiner with K = 3, sigma_min = 4e-7: injected noise std 1, 0.086, 7.4e-3, 6.3e-4
    model = PDERefiner(**SMALL)
    expected = [1.0, 0.086, 7.4e-3, 6.3e-4]
    for got, want in zip(model.noise_std, expected, strict=True):
        assert abs(got - want) <= 0.01 * want
    # and abar is the cumulative product of 1 - beta with beta_k = sigma_min^((K - k) / K)
    betas = [4e-7, 4e-7 ** (2 / 3), 4e-7 ** (1 / 3), 1.0]
    abar = [math.prod(1 - b for b in betas[: k + 1]) for k in range(4)]
    assert refiner_schedule(3, 4e-7) == pytest.approx(abar, rel=1e-12, abs=1e-15)


def test_refinement_with_an_exact_denoiser_returns_the_truth():
    torch.manual_seed(0)
    model = PDERefiner(**SMALL).double()
    u = torch.randn(3, 1, 32, dtype=torch.float64)
    y = torch.randn(3, 1, 32, dtype=torch.float64)

    def oracle(u_, y_noised, k, scalars):  # the v that the true y implies at level k
        a = torch.tensor(model.alphas_cumprod, dtype=u_.dtype)[k.long()].view(-1, 1, 1)
        eps = torch.where(a < 1, (y_noised - a.sqrt() * y) / (1 - a).clamp_min(1e-300).sqrt(), 0)
        return a.sqrt() * eps - (1 - a).sqrt() * y

    model.denoise = oracle
    out = model(u, torch.rand(3, 2, dtype=torch.float64))
    torch.testing.assert_close(out, u + model.difference_weight * y, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("cls", [PDERefiner, OneStepUNet])
def test_shapes_and_backward_reach_every_parameter(cls, dtype):
    torch.manual_seed(1)
    model = cls(history=1, scalars=3, **SMALL).to(dtype)
    u = torch.randn(4, 1, 64, dtype=dtype)
    scalars = torch.rand(4, 3, dtype=dtype)
    assert model(u, scalars).shape == (4, 1, 64)
    assert model(u, scalars).dtype == dtype
    for _ in range(2):  # zero-initialised convolutions: the first backward leaves some grads 0
        loss = model.training_loss(u, u + 0.1, scalars)
        assert loss.shape == (4,)
        model.zero_grad()
        loss.mean().backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []


def test_modern_unet_is_periodic_and_the_full_size_has_the_papers_parameter_count():
    torch.manual_seed(2)
    net = ModernUNet1d(1, 1, scalars=1, **SMALL).eval()
    for p in net.parameters():  # undo the zero init so the whole network acts
        torch.nn.init.normal_(p, std=0.2)
    x = torch.randn(2, 1, 32)
    step, scalars = torch.tensor([1.0, 2.0]), torch.rand(2, 1)
    shifted = net(torch.roll(x, 4, dims=-1), step, scalars)
    torch.testing.assert_close(shifted, torch.roll(net(x, step, scalars), 4, dims=-1), atol=1e-5, rtol=1e-5)
    full = sum(p.numel() for p in PDERefiner().parameters())
    assert 50e6 < full < 60e6  # the paper's U-Net: about 54M


def test_refiner_samples_differ_between_noise_draws_and_round_trip(tmp_path):
    torch.manual_seed(3)
    model = PDERefiner(**SMALL).eval()
    u, scalars = torch.randn(2, 1, 32), torch.rand(2, 2)
    a = model(u, scalars, generator=torch.Generator().manual_seed(0))
    b = model(u, scalars, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    loaded = pdekit.load(save_checkpoint(tmp_path / "refiner.pt", model), expected="pde-refiner")
    c = loaded(u, scalars, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, c, rtol=0, atol=0)


def test_bad_inputs_are_refused():
    model = OneStepUNet(**SMALL)
    with pytest.raises(ValueError, match="shape"):
        model(torch.randn(2, 2, 32), torch.rand(2, 2))
    with pytest.raises(ValueError, match="scalars"):
        model(torch.randn(2, 1, 32), torch.rand(2, 3))
    with pytest.raises(ValueError, match="divisible"):
        model(torch.randn(2, 1, 30), torch.rand(2, 2))
    with pytest.raises(ValueError, match="refinement_steps"):
        PDERefiner(refinement_steps=0, **SMALL)
