"""Generate a dataset from a recipe: shards in parallel, resumable, reproducible.

The same recipe and seed give identical files (each sample's random generator depends only
on the seed, the split and the sample index). A killed run restarted with the same command
writes only the missing shards. Work runs in this process, in ``workers`` local processes, or
on a Dask distributed cluster (``scheduler="tcp://..."``); the solvers written in PyTorch also
run on a GPU (``device="cuda"``, with a larger ``batch``).
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

import torch
from tqdm.auto import tqdm

from pdekit.data.problems import PROBLEMS
from pdekit.data.recipe import Recipe, load_recipe
from pdekit.data.shards import (
    MANIFEST,
    ShardSpec,
    plan_shards,
    read_manifest,
    shard_record,
    verify_dataset,
    write_manifest,
    write_shard,
)

__all__ = ["DatasetExistsError", "GenerateArgumentError", "generate"]

MARKER = ".pdekit-recipe.json"


class DatasetExistsError(FileExistsError):
    """``out`` holds a dataset (or files) from something else; nothing was overwritten."""


class GenerateArgumentError(ValueError):
    """An argument of :func:`generate` that cannot be honoured (``workers``, ``device``,
    ``batch``); the message names it."""


def _prepare_output(out: Path, recipe: Recipe) -> None:
    """Create ``out`` (or check it is writable) and claim it for ``recipe``."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".pdekit-write-test-{os.getpid()}"  # per process: runs may share out
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise PermissionError(f"generate: cannot write to the output directory {str(out)!r} "
                              f"({err})") from None
    fingerprint = recipe.fingerprint()
    for name in (MANIFEST, MARKER):
        path = out / name
        if path.is_file():
            try:
                theirs = json.loads(path.read_text()).get("recipe_sha256")
            except json.JSONDecodeError:
                theirs = None
            if theirs != fingerprint:
                raise DatasetExistsError(
                    f"generate: {str(out)!r} already holds a dataset from a different recipe "
                    f"(or seed/sample count); choose another --out or delete it. Nothing was "
                    "overwritten."
                )
    ours = {MANIFEST, MARKER}
    foreign = [p.name for p in out.iterdir()
               if p.name not in ours and not p.name.startswith((".shard-", "shard-"))]
    if foreign and not (out / MARKER).exists():
        raise DatasetExistsError(
            f"generate: {str(out)!r} is not empty ({foreign[0]!r}, ...); choose an empty or new "
            "directory. Nothing was overwritten."
        )
    (out / MARKER).write_text(json.dumps({"recipe_sha256": fingerprint,
                                          "recipe": recipe.to_dict()}, sort_keys=True))
    for stale in out.glob(".shard-*.tmp"):  # left by a killed run
        stale.unlink()


def _worker_shard(recipe_dict: dict, spec: ShardSpec, out: str, device: str, batch: int | None) -> dict:
    return write_shard(recipe_dict, spec, out, device=device, batch=batch)


def _check_device(recipe: Recipe, device, batch) -> torch.device:
    """The device and batch of a generation, checked against the recipe's problem."""
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise GenerateArgumentError(f"generate: `device` must be a torch device such as 'cpu' or "
                                    f"'cuda', got {device!r}") from None
    problem = PROBLEMS[recipe.pde]
    if device.type != "cpu":
        if not problem.runs_on_device:
            on_device = sorted(name for name, p in PROBLEMS.items() if p.runs_on_device)
            raise GenerateArgumentError(f"generate: the {recipe.pde!r} problem solves on the CPU only; "
                                        f"`device` must be 'cpu' (problems that run on a device: "
                                        f"{', '.join(on_device)})")
        if device.type == "cuda" and not torch.cuda.is_available():
            raise GenerateArgumentError(f"generate: `device` is {str(device)!r} but CUDA is not available")
    if batch is not None:
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise GenerateArgumentError(f"generate: `batch` must be a positive integer, got {batch!r}")
        if batch != problem.batch_size and not problem.batch_invariant(recipe.parameters):
            raise GenerateArgumentError(
                f"generate: `batch` would change the samples of {recipe.name!r}: its "
                f"{recipe.pde!r} solver shares a quantity across a batch (e.g. a time step set by "
                f"the batch's largest velocity; give the recipe a fixed one); leave `batch` unset "
                f"(the problem's {problem.batch_size})")
    return device


def generate(
    recipe: Recipe | str | os.PathLike,
    out: str | os.PathLike,
    *,
    samples: int | None = None,
    seed: int | None = None,
    workers: int = 1,
    scheduler: str | None = None,
    progress: bool = True,
    device: str | torch.device = "cpu",
    batch: int | None = None,
) -> dict:
    """Generate (or finish) the dataset of ``recipe`` in the folder ``out``.

    Parameters
    ----------
    recipe : Recipe or path
        The recipe (a TOML file path or a validated :class:`~pdekit.data.recipe.Recipe`).
    out : path
        Output folder: new, empty, or holding a partial run of the same recipe.
    samples : int, optional
        Cap every split at this many samples (a quick, smaller dataset).
    seed : int, optional
        Override the recipe's seed.
    workers : int
        Local processes generating shards in parallel (each sample is computed on one
        thread, so the files do not depend on this number).
    scheduler : str, optional
        Address of a Dask distributed scheduler (``tcp://host:port``) to run the shards on;
        its workers need pdekit installed and ``out`` on a file system they share.
    progress : bool
        Show a tqdm progress bar.
    device : str or torch.device
        Where the solver runs: ``"cpu"`` (default), or e.g. ``"cuda"`` for the problems whose
        solver is written in PyTorch (``navier-stokes2d``, ``ks1d``, ``burgers2d``). Random draws
        stay on the CPU, so a sample's inputs are the same; its solution agrees with the CPU's
        to rounding (bit-identical files need the same device type and batch). Each shard
        records the device type.
    batch : int, optional
        Samples solved at once (default: the problem's ``batch_size``; larger batches keep a
        GPU busy). Refused where a sample would depend on its batch (see
        :meth:`~pdekit.data.problems.Problem.batch_invariant`). Each shard records it.

    Returns
    -------
    dict
        The manifest.

    Raises
    ------
    GenerateArgumentError
        A bad ``workers``, ``device`` or ``batch`` (a ``ValueError``).
    DatasetExistsError
        ``out`` holds another dataset or unrelated files.
    PermissionError
        ``out`` is not writable.
    """
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    recipe = recipe.replace(seed=seed, samples=samples)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise GenerateArgumentError(f"generate: `workers` must be a positive integer, got {workers!r}")
    device = _check_device(recipe, device, batch)
    out = Path(out)
    _prepare_output(out, recipe)
    if (out / MANIFEST).is_file():
        problems = verify_dataset(out)
        if not problems:
            (out / MARKER).unlink(missing_ok=True)
            return read_manifest(out)
        for problem in problems:  # damaged: regenerate those shards
            bad = out / problem.split(":")[0]
            if bad.exists():
                bad.unlink()
        (out / MANIFEST).unlink()
    specs = plan_shards(recipe)
    todo = [s for s in specs if not (out / s.file).is_file()]
    total = sum(s.stop - s.start for s in todo)
    records: dict[int, dict] = {}
    bar = tqdm(total=total, desc=f"generate {recipe.name}", unit="sample", disable=not progress)
    try:
        if scheduler is not None:
            records.update(_run_dask(recipe, todo, out, scheduler, bar, str(device), batch))
        elif workers > 1 and len(todo) > 1:
            context = get_context("spawn")
            with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
                futures = {pool.submit(_worker_shard, recipe.to_dict(), s, str(out), str(device), batch): s
                           for s in todo}
                for future in as_completed(futures):
                    spec = futures[future]
                    records[spec.index] = future.result()
                    bar.update(spec.stop - spec.start)
        else:
            for spec in todo:
                records[spec.index] = write_shard(recipe, spec, out, on_sample=lambda: bar.update(1),
                                                  device=device, batch=batch)
    finally:
        bar.close()
    for spec in specs:
        if spec.index not in records:  # written by an earlier (interrupted) run
            records[spec.index] = shard_record(spec, out / spec.file)
    manifest = write_manifest(out, recipe, [records[s.index] for s in specs])
    (out / MARKER).unlink(missing_ok=True)
    return manifest


def _run_dask(recipe: Recipe, todo: list[ShardSpec], out: Path, scheduler: str, bar, device: str,
              batch: int | None) -> dict:
    try:
        from distributed import Client
        from distributed import as_completed as dask_completed
    except ImportError:  # an optional dependency
        raise ImportError(
            "generate: --scheduler needs Dask distributed: pip install 'pdekit[distributed]'"
        ) from None
    records = {}
    with Client(scheduler) as client:
        futures = [client.submit(write_shard, recipe.to_dict(), spec, str(out), key=f"shard-{spec.index}",
                                 pure=False, device=device, batch=batch)
                   for spec in todo]
        by_key = {f.key: spec for f, spec in zip(futures, todo, strict=True)}
        for future in dask_completed(futures):
            spec = by_key[future.key]
            records[spec.index] = future.result()
            bar.update(spec.stop - spec.start)
    return records
