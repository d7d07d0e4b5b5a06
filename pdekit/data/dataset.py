"""Datasets as lazy ``torch.utils.data.Dataset``s over HDF5 files.

:func:`open_dataset` reads a pdekit dataset folder (see :mod:`pdekit.data.shards`), or a single
HDF5 file in PDEBench's single-array layout or in The Well's layout. Items are dictionaries
of tensors, one per field; only the requested sample is read, and each ``DataLoader`` worker
opens its own file handles.
"""

from __future__ import annotations

import bisect
import os
from pathlib import Path

import h5py
import numpy as np
import torch

from pdekit.data.shards import MANIFEST, read_manifest

__all__ = ["HDF5SampleDataset", "SampleSubset", "open_dataset"]


class HDF5SampleDataset(torch.utils.data.Dataset):
    """Samples stored along the first axis of HDF5 datasets, across several files.

    Parameters
    ----------
    sources : list of (path, count)
        Files and the number of samples each holds (in order).
    fields : dict
        Field name -> ``{"path": <HDF5 dataset path>, "role": ..., "units": ...}``.
    coords : dict of numpy arrays
        Grid coordinates.
    statistics : dict, optional
        Per-field ``{"mean", "std", "min", "max"}`` (of the training split).
    dtype : torch.dtype
        Floating dtype of the returned fields (masks come back as ``torch.bool``).
    """

    def __init__(self, sources, fields, coords, statistics=None, dtype=torch.float32, info=None):
        self.sources = [(Path(p), int(n)) for p, n in sources]
        self.field_info = fields
        self.coords = {k: torch.as_tensor(np.asarray(v)) for k, v in coords.items()}
        self.statistics = statistics or {}
        self.dtype = dtype
        self.info = info or {}
        self._offsets = np.cumsum([0] + [n for _, n in self.sources]).tolist()
        self._handles: dict[int, h5py.File] = {}
        self._pid = os.getpid()

    # -- pickling for DataLoader workers: no open handles travel --------------------------
    def __getstate__(self):
        state = dict(self.__dict__)
        state["_handles"] = {}
        return state

    def _file(self, k: int) -> h5py.File:
        if os.getpid() != self._pid:  # a forked worker: handles are not shareable
            self._handles, self._pid = {}, os.getpid()
        handle = self._handles.get(k)
        if handle is None:
            handle = self._handles[k] = h5py.File(self.sources[k][0], "r")
        return handle

    def close(self) -> None:
        """Close the open file handles."""
        for handle in self._handles.values():
            handle.close()
        self._handles = {}

    @property
    def fields(self) -> list[str]:
        """The field names, in storage order."""
        return list(self.field_info)

    def role(self, role: str) -> list[str]:
        """Names of the fields with ``role`` ("input", "output", "mask")."""
        return [name for name, f in self.field_info.items() if f.get("role") == role]

    @property
    def inputs(self) -> list[str]:
        return self.role("input")

    @property
    def outputs(self) -> list[str]:
        return self.role("output")

    def __len__(self) -> int:
        return self._offsets[-1]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"sample {index} out of range for a dataset of {len(self)} samples")
        k = bisect.bisect_right(self._offsets, index) - 1
        j = index - self._offsets[k]
        handle = self._file(k)
        item = {}
        for name, f in self.field_info.items():
            array = handle[f["path"]][j]
            tensor = torch.from_numpy(np.asarray(array))
            if f.get("role") == "mask":
                item[name] = tensor.bool()
            else:
                item[name] = tensor.to(self.dtype)
        return item

    def per_point_statistics(self, fields=None) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Mean and standard deviation of each field at every grid point over this dataset
        (one streaming pass; float64 accumulation)."""
        names = [n for n in (fields or self.fields) if self.field_info[n].get("role") != "mask"]
        sums, squares, count = {}, {}, 0
        for k, (_, n) in enumerate(self.sources):
            handle = self._file(k)
            for name in names:
                block = np.asarray(handle[self.field_info[name]["path"]][:n], dtype=np.float64)
                sums[name] = sums.get(name, 0.0) + block.sum(0)
                squares[name] = squares.get(name, 0.0) + (block * block).sum(0)
            count += n
        out = {}
        for name in names:
            mean = sums[name] / count
            std = np.sqrt(np.maximum(squares[name] / count - mean * mean, 0.0))
            out[name] = (torch.as_tensor(mean), torch.as_tensor(std))
        return out

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({len(self)} samples, fields={self.fields}, "
                f"coords={ {k: tuple(v.shape) for k, v in self.coords.items()} })")


class SampleSubset(torch.utils.data.Dataset):
    """Samples ``indices`` of ``dataset``, which keeps describing them: its ``field_info``,
    ``coords``, ``info`` and the like are read through; :meth:`per_point_statistics` covers
    these samples only.

    Parameters
    ----------
    dataset : Dataset
        Items ``{field: tensor}`` (e.g. :func:`open_dataset`).
    indices : sequence of int
        Which of its samples, in this order.
    """

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = [int(i) for i in indices]
        if self.indices and not (-len(dataset) <= min(self.indices) and max(self.indices) < len(dataset)):
            raise IndexError(f"SampleSubset: indices out of range for a dataset of {len(dataset)} samples")

    def __getattr__(self, name: str):
        if name in ("dataset", "indices") or name.startswith("__"):  # not yet set (unpickling)
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.dataset[self.indices[index]]

    def per_point_statistics(self, fields=None) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Mean and standard deviation of each field at every grid point over these samples
        (one pass; float64 accumulation)."""
        info = getattr(self.dataset, "field_info", {})
        sums: dict = {}
        squares: dict = {}
        for i in range(len(self)):
            item = self[i]
            for name in fields or list(item):
                if info.get(name, {}).get("role") == "mask":
                    continue
                value = item[name].double()
                sums[name] = sums.get(name, 0.0) + value
                squares[name] = squares.get(name, 0.0) + value * value
        out = {}
        for name, total in sums.items():
            mean = total / len(self)
            out[name] = (mean, (squares[name] / len(self) - mean * mean).clamp_min(0).sqrt())
        return out

    def __repr__(self) -> str:
        return f"SampleSubset({len(self)} of {self.dataset!r})"


def _open_pdekit(root: Path, split: str, fields, dtype) -> HDF5SampleDataset:
    manifest = read_manifest(root)
    if split not in manifest["splits"]:
        raise ValueError(
            f"open_dataset: {root} has no split {split!r}; splits: {sorted(manifest['splits'])}"
        )
    shards = [s for s in manifest["shards"] if s["split"] == split]
    info = manifest["fields"]
    chosen = list(info) if fields is None else list(fields)
    unknown = [f for f in chosen if f not in info]
    if unknown:
        raise ValueError(f"open_dataset: unknown field {unknown[0]!r}; fields: {list(info)}")
    field_info = {name: {**info[name], "path": name} for name in chosen}
    with h5py.File(root / shards[0]["file"], "r") as handle:
        dims = {d for name in chosen for d in info[name]["dims"]}
        coords = {d: handle[d][()] for d in sorted(dims) if d in handle}
    sources = [(root / s["file"], s["stop"] - s["start"]) for s in shards]
    return HDF5SampleDataset(sources, field_info, coords, manifest["statistics"]["fields"], dtype,
                             info={"format": "pdekit", "manifest": manifest, "split": split})


def _open_pdebench(path: Path, fields, dtype) -> HDF5SampleDataset:
    with h5py.File(path, "r") as handle:
        n = handle["tensor"].shape[0]
        coords = {key.removesuffix("-coordinate"): handle[key][()]
                  for key in handle if key.endswith("-coordinate")}
        names = [key for key in handle if not key.endswith("-coordinate")
                 and isinstance(handle[key], h5py.Dataset) and handle[key].shape[:1] == (n,)]
    chosen = names if fields is None else list(fields)
    field_info = {name: {"path": name, "role": "output" if name == "tensor" else "input"}
                  for name in chosen if name in names}
    if len(field_info) != len(chosen):
        raise ValueError(f"open_dataset: {path.name} has fields {names}, asked for {chosen}")
    return HDF5SampleDataset([(path, n)], field_info, coords, None, dtype,
                             info={"format": "pdebench"})


def _open_the_well(path: Path, fields, dtype) -> HDF5SampleDataset:
    with h5py.File(path, "r") as handle:
        n = int(handle.attrs["n_trajectories"])
        dims = handle["dimensions"]
        coords = {name: dims[name][()] for name in [*dims.attrs["spatial_dims"], "time"]
                  if name in dims}
        field_info = {}
        for group in ("t0_fields", "t1_fields", "t2_fields"):
            if group not in handle:
                continue
            for name in handle[group].attrs.get("field_names", []):
                name = name.decode() if isinstance(name, bytes) else str(name)
                if not bool(handle[group][name].attrs.get("sample_varying", True)):
                    continue
                field_info[name] = {"path": f"{group}/{name}", "role": "field", "tensor_order": group}
    if fields is not None:
        missing = [f for f in fields if f not in field_info]
        if missing:
            raise ValueError(f"open_dataset: {path.name} has fields {list(field_info)}, not {missing}")
        field_info = {f: field_info[f] for f in fields}
    return HDF5SampleDataset([(path, n)], field_info, coords, None, dtype,
                             info={"format": "the-well"})


def open_dataset(
    path: str | os.PathLike,
    split: str = "train",
    *,
    fields=None,
    dtype: torch.dtype = torch.float32,
) -> HDF5SampleDataset:
    """Open a dataset lazily as a ``torch.utils.data.Dataset``.

    Parameters
    ----------
    path : path
        A pdekit dataset folder (with ``manifest.json``), or one HDF5 file in PDEBench's
        single-array layout (``tensor``, ``x-coordinate``, ...) or The Well's layout
        (``t0_fields/``, ``dimensions/``, ...).
    split : str
        Which split of a pdekit dataset (files of the other formats hold one split each).
    fields : list of str, optional
        Fields to read (default all).
    dtype : torch.dtype
        Dtype of the returned floating fields.

    Returns
    -------
    HDF5SampleDataset
        Items are ``{field: tensor}``; ``.coords``, ``.statistics`` (per-field mean, std, min,
        max of the training split), ``.per_point_statistics()``, ``.inputs``, ``.outputs``.
    """
    path = Path(path)
    if path.is_dir():
        if not (path / MANIFEST).is_file():
            raise FileNotFoundError(
                f"open_dataset: {path} has no {MANIFEST}: not a pdekit dataset or an unfinished one"
            )
        return _open_pdekit(path, split, fields, dtype)
    if not path.is_file():
        raise FileNotFoundError(f"open_dataset: {path} does not exist")
    with h5py.File(path, "r") as handle:
        kind = "pdebench" if "tensor" in handle else "the-well" if "t0_fields" in handle else None
    if kind == "pdebench":
        return _open_pdebench(path, fields, dtype)
    if kind == "the-well":
        return _open_the_well(path, fields, dtype)
    raise ValueError(
        f"open_dataset: {path.name} is neither a PDEBench single-array file (a `tensor` dataset) "
        "nor a file in The Well's layout (a `t0_fields` group)"
    )
