"""The ks1d problem: batched samples equal one-at-a-time ones, per-split lengths, the recipes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from pdekit.data import load_recipe
from pdekit.data.problems import PROBLEMS
from pdekit.data.shards import sample_rng

ROOT = Path(__file__).resolve().parents[2]


def test_batched_samples_equal_single_ones_and_draw_the_papers_ranges():
    problem = PROBLEMS["ks1d"]
    params = dataclasses.replace(problem.Parameters(), burn_in=20, frames=6, viscosity=(0.5, 1.5))
    rngs = lambda: [sample_rng(0, "train", i) for i in range(5)]  # noqa: E731
    batch = problem.sample_batch(params, None, rngs())
    for i, rng in enumerate(rngs()):
        fields, scalars = problem.sample(params, None, rng)
        assert fields["u"].shape == (6, 256)
        np.testing.assert_allclose(batch[i][0]["u"], fields["u"], rtol=0, atol=1e-11)
        assert batch[i][1] == pytest.approx(scalars, rel=1e-15)
        assert 57.6 <= scalars["length"] <= 70.4 and 0.18 <= scalars["dt"] <= 0.22
        assert 0.5 <= scalars["nu"] <= 1.5
        assert scalars["dx"] == pytest.approx(scalars["length"] / 256)
    test_params = problem.for_split(params, "test")
    assert (problem.for_split(params, "train").frames, test_params.frames) == (6, 640)
    assert problem.layout(test_params).coords["t"].shape == (640,)


def test_recipes_have_the_papers_setup():
    recipe = load_recipe(ROOT / "datasets" / "ks1d.toml")
    p = recipe.parameters
    assert recipe.splits == {"train": 2048, "valid": 128, "test": 128}
    assert (p.points, tuple(p.length), p.dt, p.burn_in, p.frames, p.eval_frames) == (
        256, (57.6, 70.4), 0.2, 360, 140, 640)
    assert tuple(load_recipe(ROOT / "datasets" / "ks1d-viscosity.toml").parameters.viscosity) == (0.5, 1.5)
    with pytest.raises(ValueError, match="viscosity"):
        dataclasses.replace(p, viscosity=(1.5, 0.5))
