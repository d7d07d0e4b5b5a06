"""The one dataset writer: shards as HDF5 through xarray (engine ``h5netcdf``), and the manifest.

A dataset is a folder::

    manifest.json        written last, atomically: recipe, shards with sample ranges and sha256,
                         fields, per-field statistics of the training split
    shard-00000.h5       samples [start, stop) of one split
    shard-00001.h5
    ...

Each shard is written to a temporary name and renamed when complete, so a shard file that
exists is whole. Its named dimensions are ``sample`` and the grid's (``x``, ``y``, ``z``), with
coordinate variables; fields and per-sample solver statistics are variables; attributes carry
units, roles, the recipe and the pdekit version. ``h5py`` and
``xarray.open_mfdataset("shard-*.h5", engine="h5netcdf")`` both read the files.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from pdekit._version import __version__
from pdekit.data.problems import PROBLEMS
from pdekit.data.recipe import Recipe, recipe_from_dict
from pdekit.linalg._threads import serial_on_cpu

__all__ = [
    "MANIFEST",
    "ShardSpec",
    "file_sha256",
    "plan_shards",
    "read_manifest",
    "sample_rng",
    "shard_name",
    "verify_dataset",
    "write_manifest",
    "write_shard",
]

MANIFEST = "manifest.json"
FORMAT = "pdekit-dataset"
FORMAT_VERSION = 1


def shard_name(index: int) -> str:
    """File name of shard ``index``."""
    return f"shard-{index:05d}.h5"


@dataclass(frozen=True)
class ShardSpec:
    """Shard ``index`` holds samples ``[start, stop)`` of ``split``."""

    index: int
    split: str
    start: int
    stop: int

    @property
    def file(self) -> str:
        return shard_name(self.index)


def plan_shards(recipe: Recipe) -> list[ShardSpec]:
    """The shards of a recipe, numbered across its splits in recipe order."""
    specs, index = [], 0
    for split, count in recipe.splits.items():
        for start in range(0, count, recipe.samples_per_shard):
            specs.append(ShardSpec(index, split, start, min(count, start + recipe.samples_per_shard)))
            index += 1
    return specs


def sample_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of sample ``index`` of ``split``: independent of sharding and workers,
    and independent between splits (the split name is part of the key)."""
    key = (zlib.crc32(split.encode()), int(index))
    return np.random.default_rng(np.random.SeedSequence(entropy=int(seed), spawn_key=key))


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _field_statistics(values: np.ndarray) -> dict:
    v = values.astype(np.float64)
    return {"count": int(v.size), "sum": float(v.sum()), "sum_squares": float((v * v).sum()),
            "min": float(v.min()), "max": float(v.max())}


def write_shard(
    recipe: Recipe | dict,
    spec: ShardSpec,
    out: str | os.PathLike,
    on_sample: Callable[[], None] | None = None,
    *,
    device: str | torch.device = "cpu",
    batch: int | None = None,
) -> dict:
    """Generate the samples of ``spec`` and write its shard; return its manifest record.

    Runs in any process (the recipe may be given as its dictionary). ``on_sample`` is called
    after each sample (progress bars). ``device`` is where the solver runs (a problem with
    ``runs_on_device``; :func:`pdekit.data.generate` checks) and ``batch`` how many samples it
    solves at once (default the problem's ``batch_size``); both are recorded in the shard.
    """
    if isinstance(recipe, dict):
        recipe = recipe_from_dict(recipe)
    problem = PROBLEMS[recipe.pde]
    params = problem.for_split(recipe.parameters, spec.split)
    layout = problem.layout(params)
    device = torch.device(device)
    on_device = {"device": device} if device.type != "cpu" else {}
    step = max(1, int(batch or problem.batch_size))
    dtype = np.dtype(recipe.dtype)
    fields: dict[str, list] = {f.name: [] for f in layout.fields}
    scalars: dict[str, list] = {name: [] for name in layout.scalars}
    # One thread: floating-point reductions then run in the same order whatever the number
    # of worker processes, so files are bit-identical (parallelism comes from processes).
    with serial_on_cpu(torch.device("cpu")):
        for first in range(spec.start, spec.stop, step):
            indices = range(first, min(first + step, spec.stop))
            rngs = [sample_rng(recipe.seed, spec.split, index) for index in indices]
            try:
                samples = problem.sample_batch(params, recipe.solver, rngs, **on_device)
            except Exception as err:
                where = (f"sample {first}" if len(indices) == 1
                         else f"samples {first}-{indices[-1]}")
                raise type(err)(f"{spec.split} {where}: {err}") from err
            for values, numbers in samples:
                for name in fields:
                    fields[name].append(values[name])
                for name in scalars:
                    scalars[name].append(numbers[name])
                if on_sample is not None:
                    on_sample()
    data_vars, statistics = {}, {}
    for f in layout.fields:
        array = np.stack(fields[f.name])
        array = array.astype(np.int8 if f.role == "mask" else dtype)
        statistics[f.name] = _field_statistics(array)
        data_vars[f.name] = (("sample", *f.dims), array,
                             {"units": f.units, "long_name": f.long_name, "role": f.role})
    for name, units in layout.scalars.items():
        values = np.asarray(scalars[name])
        data_vars[name] = (("sample",), values, {"units": units, "role": "statistic"})
    coords = {name: (name, np.asarray(values, np.float64), {"units": "1"})
              for name, values in layout.coords.items()}
    coords["sample"] = ("sample", np.arange(spec.start, spec.stop, dtype=np.int64))
    coords["split"] = ("sample", np.array([spec.split] * (spec.stop - spec.start), dtype=object))
    dataset = xr.Dataset(
        data_vars, coords=coords,
        attrs={"pdekit_version": __version__, "pde": recipe.pde, "dataset": recipe.name,
               "split": spec.split, "recipe": json.dumps(recipe.to_dict(), sort_keys=True),
               "recipe_sha256": recipe.fingerprint(), "device": device.type, "batch": step,
               "statistics": json.dumps(statistics, sort_keys=True)},
    )
    out = Path(out)
    final = out / spec.file
    tmp = out / f".{spec.file}.tmp"
    dataset.to_netcdf(tmp, engine="h5netcdf")
    os.replace(tmp, final)
    return shard_record(spec, final)


def shard_record(spec: ShardSpec, path: Path) -> dict:
    """The manifest entry of a written shard: its place, checksum, where it was solved (device
    type and batch; shards written before they were recorded say neither) and the statistics of
    its fields, read from its attributes."""
    import h5py

    with h5py.File(path, "r") as handle:
        attrs = dict(handle.attrs)
    record = {"file": spec.file, "split": spec.split, "start": spec.start, "stop": spec.stop,
              "sha256": file_sha256(path)}
    for name in ("device", "batch"):
        if name in attrs:
            value = attrs[name]  # h5netcdf stores a number as a one-element array
            record[name] = np.asarray(value).reshape(-1)[0].item() if not isinstance(value, str) else value
    record["statistics"] = json.loads(attrs["statistics"])
    return record


def _aggregate(records: list[dict], split: str) -> dict:
    totals: dict[str, dict] = {}
    for record in records:
        if record["split"] != split:
            continue
        for name, s in record["statistics"].items():
            t = totals.setdefault(name, {"count": 0, "sum": 0.0, "sum_squares": 0.0,
                                         "min": np.inf, "max": -np.inf})
            t["count"] += s["count"]
            t["sum"] += s["sum"]
            t["sum_squares"] += s["sum_squares"]
            t["min"] = min(t["min"], s["min"])
            t["max"] = max(t["max"], s["max"])
    out = {}
    for name, t in totals.items():
        mean = t["sum"] / t["count"]
        var = max(t["sum_squares"] / t["count"] - mean * mean, 0.0)
        out[name] = {"mean": mean, "std": float(np.sqrt(var)), "min": t["min"], "max": t["max"]}
    return out


def write_manifest(out: str | os.PathLike, recipe: Recipe, records: list[dict]) -> dict:
    """Write ``manifest.json`` atomically; statistics come from the training split (or the
    first split when there is no ``train``)."""
    problem = PROBLEMS[recipe.pde]
    layout = problem.layout(recipe.parameters)
    reference = "train" if "train" in recipe.splits else next(iter(recipe.splits))
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "pdekit_version": __version__,
        "name": recipe.name, "pde": recipe.pde,
        "recipe": recipe.to_dict(), "recipe_sha256": recipe.fingerprint(),
        "splits": dict(recipe.splits),
        "fields": {f.name: {"dims": list(f.dims), "role": f.role, "units": f.units,
                            "long_name": f.long_name} for f in layout.fields},
        "scalars": dict(layout.scalars),
        "statistics": {"split": reference, "fields": _aggregate(records, reference)},
        "shards": [{k: v for k, v in r.items() if k != "statistics"} for r in records],
    }
    path = Path(out) / MANIFEST
    tmp = path.with_name(f".{MANIFEST}.tmp")
    tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    os.replace(tmp, path)
    return manifest


def read_manifest(root: str | os.PathLike) -> dict:
    """Read a dataset's manifest (errors name the folder and what is wrong)."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(
            f"{root}: no {MANIFEST}: not a pdekit dataset, or its generation did not finish "
            "(run the same `pdekit generate` command again to complete it)"
        )
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: invalid JSON ({err})") from None
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{path}: not a {FORMAT} manifest")
    return manifest


def verify_dataset(root: str | os.PathLike) -> list[str]:
    """Check every shard against the manifest; return the problems found (empty if none).

    A missing, truncated or altered shard is reported by file name.
    """
    import h5py

    root = Path(root)
    manifest = read_manifest(root)
    problems = []
    for shard in manifest["shards"]:
        path = root / shard["file"]
        if not path.is_file():
            problems.append(f"{shard['file']}: missing")
            continue
        if file_sha256(path) != shard["sha256"]:
            problems.append(f"{shard['file']}: sha256 differs from the manifest (truncated or altered)")
            continue
        try:
            with h5py.File(path, "r") as handle:
                n = handle["sample"].shape[0]
            if n != shard["stop"] - shard["start"]:
                problems.append(f"{shard['file']}: holds {n} samples, manifest says "
                                f"{shard['stop'] - shard['start']}")
        except OSError as err:
            problems.append(f"{shard['file']}: unreadable HDF5 ({err})")
    return problems
