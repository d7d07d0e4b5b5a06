import math

import numpy as np
import pytest
import torch

from pdekit.train import metrics as M


def test_relative_l2_is_per_sample_and_never_summed():
    pred = torch.tensor([[3.0, 4.0], [1.0, 1.0]])
    target = torch.tensor([[0.0, 0.0], [1.0, 0.0]]) + torch.tensor([[0.0, 1.0], [0.0, 0.0]])
    # sample 0: ||(3, 3)|| / ||(0, 1)|| = sqrt(18); sample 1: ||(0, 1)|| / ||(1, 0)|| = 1
    torch.testing.assert_close(M.relative_l2(pred, target), torch.tensor([math.sqrt(18.0), 1.0]))
    torch.testing.assert_close(M.mse(pred, target), torch.tensor([9.0, 0.5]))
    torch.testing.assert_close(M.rmse(pred, target), torch.tensor([3.0, math.sqrt(0.5)]))
    torch.testing.assert_close(M.max_error(pred, target), torch.tensor([3.0, 1.0]))


def test_nrmse_averages_channels():
    target = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])  # (B=1, C=2, X=2)
    pred = torch.tensor([[[1.0, 1.0], [0.0, 0.0]]])
    # channel 0: ||(0, 1)|| / ||(1, 0)|| = 1; channel 1: ||(0, -2)|| / ||(0, 2)|| = 1 ... shift one
    pred[0, 1, 1] = 1.0  # channel 1: ||(0, -1)|| / 2 = 0.5
    torch.testing.assert_close(M.nrmse(pred, target), torch.tensor([0.75]))
    # one channel: the relative L2
    torch.testing.assert_close(M.nrmse(pred[:, :1], target[:, :1]), M.relative_l2(pred[:, :1], target[:, :1]))


def test_boundary_rmse_uses_only_the_boundary_ring():
    target = torch.zeros(1, 1, 4, 4)
    pred = torch.zeros(1, 1, 4, 4)
    pred[0, 0, 1:3, 1:3] = 100.0  # interior errors do not count
    pred[0, 0, 0, 0] = 2.0  # one of the 12 boundary nodes
    torch.testing.assert_close(M.boundary_rmse(pred, target), torch.tensor([math.sqrt(4.0 / 12)]))


def test_conserved_quantity_error_is_the_error_of_the_mean():
    target = torch.zeros(2, 1, 8)
    pred = torch.zeros(2, 1, 8)
    pred[0, 0, :] = torch.tensor([1.0, -1.0] * 4)  # zero-mean error: conserved
    pred[1, 0, :4] = 1.0  # mean 0.5
    torch.testing.assert_close(M.conserved_quantity_error(pred, target), torch.tensor([0.0, 0.5]))


def test_frequency_bands_of_single_modes_and_parseval():
    n = 64
    x = torch.arange(n) / n
    target = torch.zeros(1, 1, n)
    for k, band in ((2, "low"), (7, "mid"), (20, "high")):
        pred = torch.cos(2 * math.pi * k * x).reshape(1, 1, n)
        bands = M.frequency_band_rmse(pred, target)
        # all of the error, RMS 1/sqrt(2), lies in its band
        torch.testing.assert_close(bands[band], torch.tensor([1 / math.sqrt(2)]))
        assert all(float(v) < 1e-6 for name, v in bands.items() if name != band)
    pred, target = torch.randn(3, 2, 16, 16), torch.randn(3, 2, 16, 16)
    bands = M.frequency_band_rmse(pred, target)
    total = sum(v.square() for v in bands.values()).sqrt()
    torch.testing.assert_close(total, M.rmse(pred, target))


def test_vrmse_scales_by_the_target_variance():
    target = torch.tensor([[[1.0, -1.0, 1.0, -1.0]]])  # variance 1
    pred = target + 0.5
    torch.testing.assert_close(M.vrmse(pred, target), torch.tensor([0.5]), rtol=1e-5, atol=0)
    torch.testing.assert_close(M.vrmse(2 * pred, 2 * target), torch.tensor([0.5]), rtol=1e-5, atol=0)


def test_per_time_step_error_curve():
    target = torch.ones(2, 3, 5)  # (B, T, X)
    pred = target.clone()
    pred[:, 1] *= 1.1
    pred[0, 2] *= 1.5
    torch.testing.assert_close(M.per_time_step_error(pred, target), torch.tensor([0.0, 0.1, 0.25]))


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="differ in shape"):
        M.relative_l2(torch.zeros(2, 3), torch.zeros(2, 4))


def test_paired_comparison_matches_scipys_paired_t_statistic():
    from scipy import stats

    from pdekit.train.evaluate import paired_comparison

    rng = np.random.default_rng(0)
    difficulty = rng.lognormal(size=50)  # shared by both models: the pairing removes it
    theirs = difficulty * 0.01
    ours = theirs + rng.normal(-2e-4, 1e-4, size=50)
    c = paired_comparison(ours, theirs)
    assert c["samples"] == 50
    assert c["mean_difference"] == pytest.approx(np.mean(ours - theirs))
    t = stats.ttest_rel(ours, theirs).statistic
    assert c["mean_difference"] / c["standard_error"] == pytest.approx(t)
    assert c["lower_fraction"] == pytest.approx(np.mean(ours < theirs))
    assert c["ratio"] == pytest.approx(ours.mean() / theirs.mean())
    with pytest.raises(ValueError, match="same samples"):
        paired_comparison(ours, theirs[:-1])
    with pytest.raises(ValueError, match="at least two"):
        paired_comparison([1.0], [2.0])
