"""The `navier-stokes2d` problem in the FNO set-up: forcing and initial field from the recipe,
solved on a finer grid and subsampled (`solve_size`), and its parameter checks."""

from __future__ import annotations

import pytest
import torch

from pdekit.data import generate, open_dataset
from pdekit.data.recipe import RecipeError, recipe_from_dict


def _recipe(size: int, solve_size: int) -> dict:
    return {"name": "ns-fno-solve", "pde": "navier-stokes2d", "seed": 3, "splits": {"train": 2, "test": 1},
            "parameters": {"size": size, "test_size": size, "solve_size": solve_size, "nt": 3, "t_end": 1.0,
                           "nu": 1e-3, "dt": 0.01, "initial": "fno", "forcing": "fno"}}


def test_a_finer_solve_is_stored_at_every_kth_point(tmp_path):
    generate(recipe_from_dict(_recipe(16, 16)), tmp_path / "fine", progress=False)
    generate(recipe_from_dict(_recipe(8, 16)), tmp_path / "coarse", progress=False)
    for split, count in (("train", 2), ("test", 1)):
        fine, coarse = open_dataset(tmp_path / "fine", split), open_dataset(tmp_path / "coarse", split)
        for i in range(count):
            assert coarse[i]["w"].shape == (3, 8, 8)
            torch.testing.assert_close(coarse[i]["w"], fine[i]["w"][:, ::2, ::2], rtol=0, atol=0)
    # the forcing acts: the same initial field unforced drifts apart by 0.1 t (sin + cos) at first
    unforced = _recipe(16, 16)
    unforced["parameters"]["forcing"] = "none"
    generate(recipe_from_dict(unforced), tmp_path / "unforced", progress=False)
    w = open_dataset(tmp_path / "fine", "train")[0]["w"]
    free = open_dataset(tmp_path / "unforced", "train")[0]["w"]
    torch.testing.assert_close(w[0], free[0], rtol=0, atol=0)
    drift = float((w[1] - free[1]).abs().max())  # t = 0.5: about 0.1 * 0.5 * sqrt(2)
    assert 0.05 < drift < 0.09


@pytest.mark.parametrize(("key", "value"), [("solve_size", 24), ("initial", "gaussian"),
                                            ("forcing", "kolmogorov"), ("dt", -1.0)])
def test_bad_parameters_name_the_key(key, value):
    data = _recipe(16, 32)
    data["parameters"][key] = value
    with pytest.raises((RecipeError, ValueError), match=key):
        recipe_from_dict(data)
