"""Generating on a device and with another batch size: the same samples (to rounding), the
choices recorded per shard, and the refusals that name the argument."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch

from pdekit.cli import main
from pdekit.data import generate, open_dataset
from pdekit.data.recipe import recipe_from_dict
from tests.data.recipes import DARCY, write_recipe


def _ns(dt: float = 0.01) -> dict:
    return {"name": "ns-batch", "pde": "navier-stokes2d", "seed": 5, "samples_per_shard": 3,
            "splits": {"train": 5, "test": 2},
            "parameters": {"size": 16, "test_size": 16, "nt": 3, "t_end": 0.5, "nu": 1e-3, "dt": dt,
                           "initial": "fno", "forcing": "fno"}}


def _ks() -> dict:
    return {"name": "ks-batch", "pde": "ks1d", "seed": 2, "samples_per_shard": 4, "splits": {"train": 4},
            "parameters": {"points": 32, "frames": 4, "eval_frames": 4, "burn_in": 2}}


def _burgers() -> dict:
    return {"name": "burgers-batch", "pde": "burgers2d", "seed": 1, "samples_per_shard": 3,
            "splits": {"train": 3}, "parameters": {"points": 16, "frames": 3, "t_end": 0.2}}


def _fields(root, split: str, name: str) -> np.ndarray:
    data = open_dataset(root, split)
    return np.stack([data[i][name].numpy() for i in range(len(data))])


@pytest.mark.parametrize(("recipe", "field", "batch"), [(_ns(), "w", 1), (_ns(), "w", 3), (_ks(), "u", 3),
                                                        (_burgers(), "u", 1)])
def test_another_batch_gives_the_same_samples(tmp_path, recipe, field, batch):
    recipe = recipe_from_dict(recipe)
    generate(recipe, tmp_path / "default", progress=False)
    generate(recipe, tmp_path / "batched", progress=False, batch=batch)
    for split in recipe.splits:
        ours = _fields(tmp_path / "batched", split, field)
        reference = _fields(tmp_path / "default", split, field)
        scale = np.abs(reference).max()
        assert np.abs(ours - reference).max() <= 1e-6 * scale  # float32 files: rounding at most
    manifest = json.loads((tmp_path / "batched" / "manifest.json").read_text())
    assert {(s["device"], s["batch"]) for s in manifest["shards"]} == {("cpu", batch)}
    with h5py.File(tmp_path / "batched" / manifest["shards"][0]["file"], "r") as handle:
        assert handle.attrs["device"] == "cpu" and list(handle.attrs["batch"]) == [batch]


def test_a_batch_that_would_change_the_samples_is_refused(tmp_path):
    with pytest.raises(ValueError, match="`batch` would change the samples"):
        generate(recipe_from_dict(_ns(dt=0.0)), tmp_path / "out", progress=False, batch=4)
    # its own batch size is allowed
    generate(recipe_from_dict(_ns(dt=0.0)), tmp_path / "out", progress=False, batch=16, samples=1)


@pytest.mark.parametrize(("device", "batch", "message"), [
    ("cuda:x", None, "`device` must be a torch device"),
    ("cpu", 0, "`batch` must be a positive integer"),
    ("cpu", 2.5, "`batch` must be a positive integer"),
])
def test_bad_device_or_batch_is_named(tmp_path, device, batch, message):
    with pytest.raises(ValueError, match=message):
        generate(recipe_from_dict(_ns()), tmp_path / "out", progress=False, device=device, batch=batch)
    assert not (tmp_path / "out").exists()


def test_a_cpu_only_problem_refuses_a_device(tmp_path):
    with pytest.raises(ValueError, match=r"'darcy' problem solves on the CPU only.*navier-stokes2d"):
        generate(write_recipe(tmp_path, DARCY), tmp_path / "out", progress=False, device="meta")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without CUDA")
def test_cuda_without_cuda_is_refused(tmp_path):
    with pytest.raises(ValueError, match="CUDA is not available"):
        generate(recipe_from_dict(_ns()), tmp_path / "out", progress=False, device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("recipe", [_ns(), _ks(), _burgers()], ids=["navier-stokes2d", "ks1d", "burgers2d"])
def test_cuda_matches_the_cpu(tmp_path, recipe):
    recipe = recipe_from_dict(recipe)
    field = "w" if recipe.pde == "navier-stokes2d" else "u"
    generate(recipe, tmp_path / "cpu", progress=False)
    generate(recipe, tmp_path / "cuda", progress=False, device="cuda", batch=8)
    for split in recipe.splits:
        ours, reference = _fields(tmp_path / "cuda", split, field), _fields(tmp_path / "cpu", split, field)
        assert np.abs(ours - reference).max() <= 1e-5 * np.abs(reference).max()
    manifest = json.loads((tmp_path / "cuda" / "manifest.json").read_text())
    assert {s["device"] for s in manifest["shards"]} == {"cuda"}


def test_cli_passes_device_and_batch(tmp_path, capsys):
    path = tmp_path / "ns.toml"
    path.write_text("""
name = "ns-cli"
pde = "navier-stokes2d"
seed = 1
samples_per_shard = 2
[splits]
train = 2
[parameters]
size = 8
test_size = 8
nt = 2
t_end = 0.1
dt = 0.05
initial = "fno"
forcing = "fno"
""")
    assert main(["generate", str(path), "--out", str(tmp_path / "out"), "--batch", "1", "--no-progress"]) == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [(s["device"], s["batch"]) for s in manifest["shards"]] == [("cpu", 1)]
    capsys.readouterr()
    assert main(["generate", str(write_recipe(tmp_path, DARCY)), "--out", str(tmp_path / "darcy"),
                 "--device", "meta", "--no-progress"]) == 2
    assert "error: generate: the 'darcy' problem solves on the CPU only" in capsys.readouterr().err


@pytest.mark.parametrize(("dataset", "device", "expected"), [
    ("datasets/navier-stokes2d-fno.toml", "cuda", {"device": "cuda", "batch": 200}),
    ("datasets/navier-stokes2d-cpu.toml", "cuda:1", {"device": "cuda:1"}),  # dt from the CFL number
    ("datasets/navier-stokes2d-fno.toml", "cpu", {}),
    ("datasets/darcy.toml", "cuda", {}),  # solves on the CPU only
])
def test_training_generates_its_dataset_on_its_device(tmp_path, monkeypatch, dataset, device, expected):
    import pdekit.train.recipe as train_recipe

    calls = []
    monkeypatch.setattr(train_recipe, "generate", lambda recipe, folder, **options: calls.append(options))
    root = train_recipe.Path(__file__).resolve().parents[2]
    path = tmp_path / "train.toml"
    path.write_text(f'name = "t"\ndataset = "{root / dataset}"\ndata_dir = "{tmp_path / "data"}"\n'
                    '[model]\nname = "unet"\nin_channels = 1\nout_channels = 1\n')
    recipe = train_recipe.load_train_recipe(path)
    train_recipe.prepare_dataset(recipe, progress=False, device=device, workers=4)
    assert calls == [{"workers": 1 if expected else 4, "progress": False, **expected}]
