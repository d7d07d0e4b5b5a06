import h5py
import numpy as np
import pytest
import torch

from pdekit.cli import main
from pdekit.data import export_dataset, generate, open_dataset
from tests.data.recipes import DARCY, write_recipe


@pytest.fixture(scope="module")
def darcy_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("darcy")
    out = root / "darcy"
    generate(write_recipe(root, DARCY), out, progress=False)
    return out


def test_export_pdebench_round_trip(darcy_dataset, tmp_path):
    files = export_dataset(darcy_dataset, tmp_path, "pdebench")
    assert [f.name for f in files] == ["tiny-darcy_train.hdf5", "tiny-darcy_test.hdf5"]
    with h5py.File(files[0], "r") as handle:
        assert handle["tensor"].shape == (4, 1, 9, 9)  # (N, T, X, Y)
        assert handle["a"].shape == (4, 9, 9)
        np.testing.assert_allclose(handle["x-coordinate"][()], np.linspace(0, 1, 9), rtol=1e-6)
    ours = open_dataset(darcy_dataset, "train")
    theirs = open_dataset(files[0])
    assert len(theirs) == 4 and set(theirs.fields) == {"tensor", "a"}
    for i in range(4):
        torch.testing.assert_close(theirs[i]["tensor"][0], ours[i]["u"])
        torch.testing.assert_close(theirs[i]["a"], ours[i]["a"])


def test_export_the_well_round_trip(darcy_dataset, tmp_path):
    assert main(["export", str(darcy_dataset), "--format", "the-well", "--out", str(tmp_path)]) == 0
    path = tmp_path / "tiny-darcy_test.hdf5"
    with h5py.File(path, "r") as handle:
        assert handle.attrs["n_trajectories"] == 2 and handle.attrs["n_spatial_dims"] == 2
        assert list(handle["dimensions"].attrs["spatial_dims"]) == ["x", "y"]
        assert handle["t0_fields/u"].shape == (2, 1, 9, 9)  # (B, T, X, Y)
        assert bool(handle["t0_fields/u"].attrs["time_varying"])
        assert "x_boundary" in handle["boundary_conditions"]
    theirs = open_dataset(path, fields=["u"])
    ours = open_dataset(darcy_dataset, "test")
    torch.testing.assert_close(theirs[1]["u"][0], ours[1]["u"])
    assert set(theirs.coords) == {"x", "y", "time"}


def test_reads_a_pdebench_file_in_the_documented_layout(tmp_path):
    path = tmp_path / "1D_Advection_Sols_beta0.1.hdf5"
    rng = np.random.default_rng(0)
    tensor = rng.random((5, 11, 32)).astype(np.float32)
    with h5py.File(path, "w") as handle:
        handle["tensor"] = tensor
        handle["x-coordinate"] = np.linspace(0, 1, 32, dtype=np.float32)
        handle["t-coordinate"] = np.linspace(0, 2, 12, dtype=np.float32)
    dataset = open_dataset(path)
    assert len(dataset) == 5 and dataset.fields == ["tensor"]
    torch.testing.assert_close(dataset[3]["tensor"], torch.from_numpy(tensor[3]))
    assert dataset.coords["t"].shape == (12,)


def test_reads_a_the_well_file_in_the_documented_layout(tmp_path):
    path = tmp_path / "example.hdf5"
    rng = np.random.default_rng(1)
    density = rng.random((3, 4, 8, 6)).astype(np.float32)
    velocity = rng.random((3, 4, 8, 6, 2)).astype(np.float32)
    with h5py.File(path, "w") as handle:
        handle.attrs.update({"dataset_name": "example", "grid_type": "cartesian",
                             "n_spatial_dims": 2, "n_trajectories": 3, "simulation_parameters": []})
        dims = handle.create_group("dimensions")
        dims.attrs["spatial_dims"] = ["x", "y"]
        dims["time"] = np.arange(4, dtype=np.float32)
        dims["x"] = np.linspace(0, 1, 8, dtype=np.float32)
        dims["y"] = np.linspace(0, 1, 6, dtype=np.float32)
        t0 = handle.create_group("t0_fields")
        t0.attrs["field_names"] = ["density", "viscosity"]
        t0["density"] = density
        t0["density"].attrs.update({"sample_varying": True, "time_varying": True})
        t0["viscosity"] = np.ones((8, 6), np.float32)  # the same for every trajectory
        t0["viscosity"].attrs.update({"sample_varying": False, "time_varying": False})
        t1 = handle.create_group("t1_fields")
        t1.attrs["field_names"] = ["velocity"]
        t1["velocity"] = velocity
        t1["velocity"].attrs.update({"sample_varying": True, "time_varying": True})
        handle.create_group("t2_fields").attrs["field_names"] = []
    dataset = open_dataset(path)
    assert len(dataset) == 3 and dataset.fields == ["density", "velocity"]
    torch.testing.assert_close(dataset[2]["velocity"], torch.from_numpy(velocity[2]))
    assert dataset.coords["time"].shape == (4,)


def test_unknown_files_and_formats(tmp_path, darcy_dataset):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as handle:
        handle["data"] = np.zeros(3)
    with pytest.raises(ValueError, match="neither a PDEBench"):
        open_dataset(path)
    with pytest.raises(FileNotFoundError, match="manifest"):
        open_dataset(tmp_path)
    with pytest.raises(ValueError, match="format"):
        export_dataset(darcy_dataset, tmp_path, "netcdf4")
