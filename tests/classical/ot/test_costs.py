"""Cost helpers and seeded problems: against POT's ``ot.dist`` and closed forms."""

from __future__ import annotations

import numpy as np
import ot
import pytest
import torch

from pdekit.classical.ot import (
    euclidean_cost,
    grid_cost,
    grid_points,
    image_distribution,
    l1_cost,
    sinkhorn,
    squared_euclidean_cost,
)
from pdekit.classical.ot.problems import (
    gaussian_mixture_density,
    random_assignment,
    random_point_clouds,
    synthetic_image,
)


def test_point_cloud_costs_match_pot(dtype):
    rng = np.random.default_rng(0)
    x, y = rng.random((7, 3)), rng.random((5, 3))
    xt, yt = torch.tensor(x, dtype=dtype), torch.tensor(y, dtype=dtype)
    tol = 1e-6 if dtype == torch.float32 else 1e-14
    for ours, metric in ((squared_euclidean_cost, "sqeuclidean"), (euclidean_cost, "euclidean"),
                         (l1_cost, "cityblock")):
        C = ours(xt, yt)
        assert C.dtype == dtype and C.shape == (7, 5)
        np.testing.assert_allclose(C.double().numpy(), ot.dist(x, y, metric=metric), rtol=tol,
                                   atol=tol)
    assert float(squared_euclidean_cost(xt, xt).diagonal().abs().max()) == 0.0
    with pytest.raises(ValueError, match="same d"):
        l1_cost(xt, torch.ones(4, 2, dtype=dtype))


def test_grid_costs_give_the_exact_1d_wasserstein_distances():
    n = 60
    a = gaussian_mixture_density(n, seed=0)
    b = gaussian_mixture_density(n, seed=1)
    x = grid_points(n)[:, 0]
    assert torch.allclose(x, (torch.arange(n, dtype=torch.float64) + 0.5) / n)
    # W1 in 1D: the integral of |F - G| (exact on the grid: mass moves between cell centres)
    w1 = float((torch.cumsum(a - b, 0)[:-1]).abs().sum() / n)
    assert abs(ot.emd2(a.numpy(), b.numpy(), grid_cost(n, metric="euclidean").numpy()) - w1) < 1e-12
    w2_exact = ot.emd2(a.numpy(), b.numpy(), grid_cost(n).numpy())
    w2_1d = ot.wasserstein_1d(x.numpy(), x.numpy(), a.numpy(), b.numpy(), p=2)
    assert abs(w2_exact - w2_1d) < 1e-12
    # and entropic OT approaches it as eps -> 0
    r = sinkhorn(a, b, grid_cost(n), 1e-4, tol=1e-10, maxiter=100_000)
    assert r.status.ok and 0 <= float(r.cost) - w2_exact < 1e-3 * w2_exact + 1e-6
    C2 = grid_cost((3, 4), metric="l1")
    assert C2.shape == (12, 12) and float(C2[0, 11]) == pytest.approx(2 / 3 + 3 / 4)


def test_images_and_problems_are_seeded_and_well_formed():
    img = synthetic_image(28, seed=3)
    assert img.shape == (28, 28) and float(img.min()) == 0.0 and float(img.max()) <= 1.0
    assert torch.equal(img, synthetic_image(28, seed=3))
    assert 0.05 < float((img > 0).double().mean()) < 0.6
    w, p = image_distribution(img)
    assert w.shape == (784,) and p.shape == (784, 2)
    assert float(w.sum()) == pytest.approx(1.0, abs=1e-14)
    ws, ps = image_distribution(img, support_only=True)
    assert bool((ws > 0).all()) and len(ws) == int((img > 0).sum()) and ps.shape == (len(ws), 2)
    with pytest.raises(ValueError, match="non-negative"):
        image_distribution(-img)
    a, b, x, y = random_point_clouds(10, 12, dim=3, seed=1)
    assert x.shape == (10, 3) and y.shape == (12, 3) and float(b.sum()) == pytest.approx(1.0)
    a, _, C = random_assignment(9, seed=2)
    assert float(a.sum()) == pytest.approx(1.0)
    assert C.shape == (9, 9) and 0 <= float(C.min()) and float(C.max()) <= 1
    assert torch.equal(C, random_assignment(9, seed=2)[2])
    d = gaussian_mixture_density((5, 6), seed=0, dtype=torch.float32)
    assert d.shape == (30,) and d.dtype == torch.float32 and bool((d > 0).all())
