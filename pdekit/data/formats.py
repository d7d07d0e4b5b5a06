"""Export pdekit datasets to the layouts of PDEBench and The Well.

* PDEBench single-array layout (Takamoto et al., NeurIPS 2022 datasets track): one HDF5 file
  per split with the output field as ``tensor`` of shape ``(N, T, *grid)`` (here ``T = 1``),
  each input field as its own ``(N, *grid)`` dataset, and ``x-coordinate``, ``y-coordinate``,
  ``t-coordinate``.
* The Well (Ohana et al., NeurIPS 2024 datasets track, ``docs/data_format.md``): root attributes
  (``dataset_name``, ``grid_type``, ``n_spatial_dims``, ``n_trajectories``,
  ``simulation_parameters``), a ``dimensions`` group (``time`` and the spatial coordinates), a
  ``boundary_conditions`` group, a ``scalars`` group, and ``t0_fields`` (scalar fields, shape
  ``(N, T, *grid)``, here ``T = 1``), ``t1_fields``, ``t2_fields``.

:func:`pdekit.data.open_dataset` reads both back.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from pdekit.data.dataset import open_dataset
from pdekit.data.shards import read_manifest

__all__ = ["FORMATS", "export_dataset"]

FORMATS = ("pdebench", "the-well")


def _split_arrays(root: Path, split: str) -> tuple[dict, dict, dict]:
    dataset = open_dataset(root, split)
    arrays = {}
    for k, (_path, n) in enumerate(dataset.sources):
        handle = dataset._file(k)
        for name in dataset.fields:
            arrays.setdefault(name, []).append(np.asarray(handle[name][:n]))
    dataset.close()
    arrays = {k: np.concatenate(v) for k, v in arrays.items()}
    coords = {k: v.numpy() for k, v in dataset.coords.items()}
    return arrays, coords, dataset.field_info


def export_dataset(
    root: str | os.PathLike, dest: str | os.PathLike, format: str, splits=None
) -> list[Path]:
    """Write each split of the pdekit dataset ``root`` as one HDF5 file in ``format``.

    Parameters
    ----------
    root : path
        A pdekit dataset folder.
    dest : path
        Output folder (created); files are named ``<dataset>_<split>.hdf5``.
    format : {"pdebench", "the-well"}
        Target layout.
    splits : list of str, optional
        Splits to export (default all).

    Returns
    -------
    list of Path
        The written files.
    """
    if format not in FORMATS:
        raise ValueError(f"export: `format` must be one of {FORMATS}, got {format!r}")
    root, dest = Path(root), Path(dest)
    manifest = read_manifest(root)
    splits = list(manifest["splits"]) if splits is None else list(splits)
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for split in splits:
        arrays, coords, info = _split_arrays(root, split)
        path = dest / f"{manifest['name']}_{split}.hdf5"
        tmp = path.with_name(f".{path.name}.tmp")
        writer = _write_pdebench if format == "pdebench" else _write_the_well
        writer(tmp, manifest, arrays, coords, info)
        os.replace(tmp, path)
        written.append(path)
    return written


def _write_pdebench(path, manifest, arrays, coords, info) -> None:
    outputs = [n for n, f in info.items() if f["role"] == "output"]
    if len(outputs) != 1:
        raise ValueError(f"export pdebench: needs exactly one output field, got {outputs}")
    with h5py.File(path, "w") as handle:
        handle.create_dataset("tensor", data=arrays[outputs[0]][:, None].astype(np.float32))
        for name, f in info.items():
            if name != outputs[0]:
                data = arrays[name]
                handle.create_dataset(name, data=data if f["role"] == "mask" else data.astype(np.float32))
        for axis, values in coords.items():
            handle.create_dataset(f"{axis}-coordinate", data=values.astype(np.float32))
        handle.create_dataset("t-coordinate", data=np.zeros(1, np.float32))
        handle.attrs["pdekit_recipe_sha256"] = manifest["recipe_sha256"]


def _write_the_well(path, manifest, arrays, coords, info) -> None:
    spatial = [d for d in ("x", "y", "z") if d in coords]
    n = next(iter(arrays.values())).shape[0]
    bc = manifest["recipe"]["parameters"].get("bc", "dirichlet")
    with h5py.File(path, "w") as handle:
        handle.attrs["dataset_name"] = manifest["name"]
        handle.attrs["grid_type"] = "cartesian"
        handle.attrs["n_spatial_dims"] = len(spatial)
        handle.attrs["n_trajectories"] = n
        handle.attrs["simulation_parameters"] = []
        dims = handle.create_group("dimensions")
        dims.attrs["spatial_dims"] = spatial
        time = dims.create_dataset("time", data=np.zeros(1, np.float32))
        time.attrs["sample_varying"] = False
        for axis in spatial:
            d = dims.create_dataset(axis, data=coords[axis].astype(np.float32))
            d.attrs["sample_varying"] = False
            d.attrs["time_varying"] = False
        bcs = handle.create_group("boundary_conditions")
        for k, axis in enumerate(spatial):
            group = bcs.create_group(f"{axis}_boundary")
            group.attrs["associated_dims"] = [axis]
            group.attrs["associated_fields"] = []
            # The Well's vocabulary is periodic / wall / open; Dirichlet and Neumann walls are "wall"
            group.attrs["bc_type"] = "wall"
            group.attrs["pdekit_bc"] = str(bc if isinstance(bc, str) else bc[k])
            group.attrs["sample_varying"] = False
            group.attrs["time_varying"] = False
            mask = np.zeros(len(coords[axis]), bool)
            mask[[0, -1]] = True
            group.create_dataset("mask", data=mask)
        scalars = handle.create_group("scalars")
        scalars.attrs["field_names"] = []
        t0 = handle.create_group("t0_fields")
        t0.attrs["field_names"] = list(info)
        for name in info:
            data = arrays[name][:, None]
            d = t0.create_dataset(name, data=data.astype(np.float32))
            d.attrs["dim_varying"] = [True] * len(spatial)
            d.attrs["sample_varying"] = True
            d.attrs["time_varying"] = True
        for group in ("t1_fields", "t2_fields"):
            handle.create_group(group).attrs["field_names"] = []
