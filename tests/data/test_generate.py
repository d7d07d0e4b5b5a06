import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import xarray as xr

from pdekit.cli import main
from pdekit.data import DatasetExistsError, generate, open_dataset, read_manifest, verify_dataset
from pdekit.data.shards import file_sha256
from tests.data.recipes import DARCY, POISSON, write_recipe


def _hashes(root: Path) -> dict:
    return {p.name: file_sha256(p) for p in sorted(root.glob("shard-*.h5"))}


@pytest.fixture(scope="module")
def poisson_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    recipe = write_recipe(root)
    out = root / "poisson"
    generate(recipe, out, progress=False)
    return recipe, out


def test_layout_manifest_and_readers(poisson_dataset):
    _, out = poisson_dataset
    manifest = read_manifest(out)
    assert [s["file"] for s in manifest["shards"]] == [f"shard-{i:05d}.h5" for i in range(5)]
    assert [(s["split"], s["start"], s["stop"]) for s in manifest["shards"]] == [
        ("train", 0, 3), ("train", 3, 6), ("train", 6, 7), ("test", 0, 3), ("test", 3, 4)]
    assert list(manifest["fields"]) == ["f", "solid", "u"]
    assert not list(out.glob(".*tmp")) and not (out / ".pdekit-recipe.json").exists()
    # h5py: named dimensions and attributes
    with h5py.File(out / "shard-00000.h5", "r") as handle:
        assert handle["u"].shape == (3, 12, 10)
        assert handle["u"].attrs["role"] == "output"
        assert json.loads(handle.attrs["recipe"])["name"] == "tiny-poisson"
        assert handle["iterations"].shape == (3,)
    # xarray over all shards
    ds = xr.open_mfdataset(str(out / "shard-*.h5"), engine="h5netcdf", combine="nested",
                           concat_dim="sample")
    assert ds.sizes["sample"] == 11 and ds["u"].dims == ("sample", "x", "y")
    assert set(np.unique(ds["split"].values)) == {"train", "test"}
    assert float(ds["relative_residual"].max()) <= 1e-9
    np.testing.assert_allclose(ds["x"].values, (np.arange(12) + 1) / 12.5)
    ds.close()


def test_statistics_match_the_training_data(poisson_dataset):
    _, out = poisson_dataset
    train = open_dataset(out, "train")
    u = torch.stack([train[i]["u"] for i in range(len(train))]).double()
    stats = train.statistics["u"]
    assert stats["mean"] == pytest.approx(float(u.mean()), rel=1e-5)
    assert stats["std"] == pytest.approx(float(u.std(unbiased=False)), rel=1e-5)
    mean, std = train.per_point_statistics(["u"])["u"]
    torch.testing.assert_close(mean, u.mean(0), rtol=1e-5, atol=1e-9)
    torch.testing.assert_close(std, u.std(0, unbiased=False), rtol=1e-4, atol=1e-9)


def test_open_dataset_in_a_dataloader_with_workers(poisson_dataset):
    _, out = poisson_dataset
    test = open_dataset(out, "test")
    assert len(test) == 4 and test.inputs == ["f"] and test.outputs == ["u"]
    loader = torch.utils.data.DataLoader(test, batch_size=2, num_workers=2)
    batches = list(loader)
    assert batches[0]["u"].shape == (2, 12, 10) and batches[0]["solid"].dtype == torch.bool
    direct = torch.stack([test[i]["u"] for i in range(4)])
    torch.testing.assert_close(torch.cat([b["u"] for b in batches]), direct)
    with pytest.raises(ValueError, match="no split 'valid'"):
        open_dataset(out, "valid")
    with pytest.raises(IndexError):
        test[4]


def test_generation_is_deterministic_and_independent_of_workers(poisson_dataset, tmp_path):
    recipe, out = poisson_dataset
    again = tmp_path / "again"
    generate(recipe, again, workers=2, progress=False)
    assert _hashes(again) == _hashes(out)
    assert read_manifest(again)["shards"] == read_manifest(out)["shards"]


def test_corrupted_shard_is_reported_by_name(poisson_dataset, tmp_path, capsys):
    recipe, out = poisson_dataset
    copy = tmp_path / "copy"
    generate(recipe, copy, progress=False)
    path = copy / "shard-00003.h5"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated
    problems = verify_dataset(copy)
    assert len(problems) == 1 and problems[0].startswith("shard-00003.h5")
    assert main(["info", str(copy)]) == 1
    assert "shard-00003.h5" in capsys.readouterr().out
    # generating again repairs it
    generate(recipe, copy, progress=False)
    assert verify_dataset(copy) == [] and _hashes(copy) == _hashes(out)


def test_resume_after_kill(tmp_path):
    target = tmp_path / "killed"
    slow = write_recipe(tmp_path, DARCY.replace("train = 4", "train = 40").replace(
        "fine_size = 33", "fine_size = 129"), name="slow.toml")
    command = [sys.executable, "-m", "pdekit.cli", "generate", str(slow), "--out", str(target),
               "--no-progress"]
    # its own process group: kill -9 takes the run and its worker processes, as a killed job
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(target.glob("shard-*.h5"))) < 2:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    done_before = _hashes(target)
    assert 2 <= len(done_before) < 23 and not (target / "manifest.json").exists()
    generate(slow, target, progress=False)  # the same command, finished
    finished = _hashes(target)
    assert {k: finished[k] for k in done_before} == done_before  # kept, not rewritten
    clean = tmp_path / "clean"
    generate(slow, clean, progress=False)
    assert finished == _hashes(clean)
    assert verify_dataset(target) == []


def test_existing_dataset_from_another_recipe_is_refused(poisson_dataset, tmp_path):
    recipe, out = poisson_dataset
    before = _hashes(out)
    other = write_recipe(tmp_path, POISSON.replace("seed = 7", "seed = 8"), name="other.toml")
    with pytest.raises(DatasetExistsError, match="different recipe"):
        generate(other, out, progress=False)
    with pytest.raises(DatasetExistsError, match="different recipe"):
        generate(recipe, out, seed=9, progress=False)
    assert _hashes(out) == before
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine")
    with pytest.raises(DatasetExistsError, match="not empty"):
        generate(recipe, stranger, progress=False)
    assert (stranger / "notes.txt").read_text() == "mine"


def test_unwritable_output_is_refused(poisson_dataset, tmp_path):
    recipe, _ = poisson_dataset
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(PermissionError, match="cannot write"):
        generate(recipe, blocker / "sub", progress=False)


def test_cli_generate_info_plot(tmp_path, capsys):
    recipe = write_recipe(tmp_path, DARCY)
    out = tmp_path / "darcy"
    assert main(["generate", str(recipe), "--out", str(out), "--samples", "2", "--seed", "4",
                 "--no-progress"]) == 0
    assert read_manifest(out)["splits"] == {"train": 2, "test": 2}
    assert main(["info", str(out)]) == 0
    assert "2 shards match the manifest" in capsys.readouterr().out
    png = tmp_path / "sample.png"
    assert main(["plot", str(out), "--sample", "1", "--split", "test", "--out", str(png)]) == 0
    assert png.stat().st_size > 1000
    assert main(["generate", str(recipe), "--out", str(out), "--samples", "3"]) == 2
    assert "different recipe" in capsys.readouterr().err


@pytest.mark.slow
def test_dask_local_cluster_gives_the_same_files(poisson_dataset, tmp_path):
    distributed = pytest.importorskip("distributed")
    recipe, out = poisson_dataset
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        generate(recipe, tmp_path / "dask", scheduler=cluster.scheduler_address, progress=False)
    assert _hashes(tmp_path / "dask") == _hashes(out)
    assert read_manifest(tmp_path / "dask")["shards"] == read_manifest(out)["shards"]
