"""Layer 5: the ``pdekit`` command. Thin: parses arguments, then calls the library."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

from pdekit._version import __version__

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


class OptionError(ValueError):
    """A command-line option that cannot be honoured (printed as one line, exit status 2)."""


def _dtype(name: str | None) -> torch.dtype | None:
    return None if name is None else _DTYPES[name]


def _device(name: str) -> str:
    """``--device``: a torch device this machine has (checked before any work starts)."""
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"{name!r} is not a device; use cpu or cuda (cuda:1, ...)") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise argparse.ArgumentTypeError(f"{name!r}: this machine has no CUDA device; use cpu")
        if device.index is not None and device.index >= count:
            raise argparse.ArgumentTypeError(f"{name!r}: this machine has {count} CUDA device(s)")
    elif device.type != "cpu" and not getattr(getattr(torch, device.type, None), "is_available",
                                              lambda: False)():
        raise argparse.ArgumentTypeError(f"{name!r}: no such device on this machine; use cpu")
    return name


def _checked_number(convert, kind: str, ok, requirement: str):
    """An argparse type: ``convert(text)`` (else "is not KIND"), then ``ok(value)`` (else
    "must REQUIREMENT"); checked when parsed."""
    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {kind}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"{text!r}: must {requirement}")
        return value
    return parse


_non_negative_int = _checked_number(int, "an integer", lambda v: v >= 0, "be 0 or more")
_positive_float = _checked_number(float, "a number", lambda v: v > 0, "be above 0")
_solid_fraction = _checked_number(float, "a number", lambda v: 0 <= v <= 0.9, "lie in [0, 0.9]")


def _scales(text: str) -> tuple[int, ...]:
    """Comma-separated positive integers, e.g. ``1,2,4`` (checked when parsed)."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None
    if min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: every scale must be 1 or more")
    return values


def _dcdm_methods(text: str) -> tuple[str, ...]:
    """Comma-separated ``bench dcdm`` method names, e.g. ``pdekit-cg,pdekit-dcdm`` (checked when
    parsed)."""
    from pdekit.bench.dcdm import METHODS

    values = tuple(v.strip() for v in text.split(","))
    unknown = [v for v in values if v not in METHODS]
    if unknown:
        raise argparse.ArgumentTypeError(f"{text!r}: unknown method {unknown[0]!r}; use some of "
                                         f"{', '.join(METHODS)}")
    return values


def _load_system(args):
    """The operator and right-hand side named by ``pdekit solve``'s arguments."""
    import scipy.io
    import scipy.sparse

    from pdekit.linalg import StencilOperator, aslinearoperator

    dtype = _dtype(args.dtype) or torch.float64
    target = args.problem
    generator = torch.Generator().manual_seed(args.seed)
    if target in ("poisson2d", "poisson3d"):
        dim = int(target[-2])
        shape = (args.size,) * dim
        solid = None
        if args.solid_fraction > 0:
            solid = torch.rand(shape, generator=generator) < args.solid_fraction
        A = StencilOperator(shape, solid=solid, bc=args.bc, dtype=dtype, device=args.device)
    else:
        path = Path(target)
        if not path.exists():
            raise SystemExit(
                f"pdekit solve: {target!r} is neither a problem (poisson2d, poisson3d) nor a file"
            )
        if path.suffix == ".npz":
            matrix = scipy.sparse.load_npz(path)
        elif path.suffix == ".mtx":
            matrix = scipy.io.mmread(path)
        else:
            raise SystemExit(f"pdekit solve: matrix files must be .npz (scipy.sparse) or .mtx, got {path}")
        A = aslinearoperator(scipy.sparse.csr_matrix(matrix), dtype=dtype, device=args.device)
    if args.rhs:
        b = torch.as_tensor(np.load(args.rhs), dtype=dtype).reshape(A.vector_shape).to(args.device)
    else:
        b = torch.rand(A.vector_shape, generator=generator, dtype=torch.float64).to(args.device, dtype)
        if getattr(A, "solid", None) is not None:
            b = b * (~A.solid)
    return A, b


def _cmd_solve(args) -> int:
    from pdekit.linalg import cg, ichol0, jacobi, multigrid, sor, ssor

    A, b = _load_system(args)
    preconditioners = {"none": None, "jacobi": jacobi, "ssor": lambda A: ssor(A, args.omega),
                       "ichol0": ichol0, "multigrid": multigrid}
    if args.method == "cg":
        make = preconditioners[args.precond]
        M = None if make is None else make(A)
        res = cg(A, b, rtol=args.rtol, atol=args.atol, maxiter=args.maxiter, M=M)
    else:
        res = sor(A, b, args.omega, rtol=args.rtol, atol=args.atol, maxiter=args.maxiter)
    b_norm = float(torch.linalg.vector_norm(b.double()))
    true = float(torch.linalg.vector_norm((b - A @ res.x).double())) / max(b_norm, 1e-300)
    summary = {
        "problem": args.problem, "n": A.n, "method": args.method,
        "preconditioner": args.precond if args.method == "cg" else None,
        "status": res.status.name, "iterations": res.iterations, "seconds": res.wall_time,
        "relative_residual": true, "device": str(A.device), "dtype": str(A.dtype),
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{args.method}{'+' + args.precond if args.method == 'cg' and args.precond != 'none' else ''}"
              f" on {args.problem} (n = {A.n}, {A.device}, {A.dtype}): {res.status.name} in "
              f"{res.iterations} iterations, {res.wall_time:.3f} s, relative residual {true:.2e}")
        if not res.status.ok:
            print(f"  {res.message}")
    if args.out:
        np.save(args.out, res.x.cpu().numpy())
        if not args.json:
            print(f"  solution written to {args.out}")
    return 0 if res.status.ok else 1


def _cmd_bench(args) -> int:
    from pdekit.bench import run_benchmark

    options = {"quick": args.quick}
    if args.rtol is not None:
        options["rtol"] = args.rtol
    if args.dtype:
        options["dtype"] = _dtype(args.dtype)
    if args.problems:
        options["problems"] = args.problems.split(",")
    if args.sources:
        options["sources"] = args.sources.split(",")
    for name in ("sequence", "instances", "seeds", "checkpoint", "depth", "scales",
                 "max_fraction", "methods"):  # benchmark-specific
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    json_path = args.json or (None if args.sources else Path("runs") / "bench" / f"{args.name}.json")
    try:
        run_benchmark(args.name, device=args.device, json_path=json_path, plot_path=args.plot,
                      **options)
    except ValueError as err:  # a bad option or report the benchmark names: one line, no traceback
        if not str(err).startswith("bench"):
            raise
        print(f"pdekit {err}", file=sys.stderr)
        return 2
    return 0


def _cmd_demo(args) -> int:
    from pdekit.bench.demo import run_demo

    try:
        workers = args.workers or (1 if args.quick else os.cpu_count() or 1)
        run_demo(args.out, quick=args.quick, device=args.device, seed=args.seed,
                 workers=workers, progress=not args.no_progress)
    except ValueError as err:  # a bad --device or --seed: one line, no traceback
        if str(err).startswith("demo:"):
            print(f"pdekit {err}", file=sys.stderr)
            return 2
        raise
    return 0


def _cmd_generate(args) -> int:
    from pdekit.data import generate

    workers = args.workers or ((os.cpu_count() or 1) if args.device.startswith("cpu") else 1)
    manifest = generate(args.recipe, args.out, samples=args.samples, seed=args.seed,
                        workers=workers, scheduler=args.scheduler,
                        progress=not args.no_progress, device=args.device, batch=args.batch)
    counts = ", ".join(f"{k} {v}" for k, v in manifest["splits"].items())
    print(f"{manifest['name']}: {counts} samples in {len(manifest['shards'])} shards -> {args.out}")
    return 0


def _dataset_summary(path: Path) -> int:
    from pdekit.data import read_manifest, verify_dataset

    manifest = read_manifest(path)
    print(f"{path}: {manifest['name']} (pde {manifest['pde']}, pdekit {manifest['pdekit_version']})")
    print("  splits: " + ", ".join(f"{k} {v}" for k, v in manifest["splits"].items()))
    stats = manifest["statistics"]["fields"]
    for name, field in manifest["fields"].items():
        s = stats.get(name, {})
        print(f"  {name:10s} {field['role']:6s} dims {tuple(field['dims'])}  "
              f"mean {s.get('mean', float('nan')):.4g}  std {s.get('std', float('nan')):.4g}  "
              f"[{s.get('min', float('nan')):.4g}, {s.get('max', float('nan')):.4g}]")
    problems = verify_dataset(path)
    if problems:
        print(f"  integrity: {len(problems)} problem(s)")
        for problem in problems:
            print(f"    {problem}")
        return 1
    print(f"  integrity: {len(manifest['shards'])} shards match the manifest")
    return 0


def _cmd_plot(args) -> int:
    from pdekit.train.curves import is_run_folder, plot_learning_curves

    runs = [path for path in args.path if is_run_folder(path)]
    if runs:
        if len(runs) != len(args.path):
            other = next(path for path in args.path if path not in runs)
            raise OptionError(f"{other!r} is not a training run folder (no metrics.jsonl): plot "
                              "several run folders, or one dataset")
        out = args.out or (f"{Path(runs[0]).name}-curves.png" if len(runs) == 1 else "learning-curves.png")
        print(f"wrote {plot_learning_curves(runs, out, metric=args.metric)}")
        return 0
    if len(args.path) > 1:
        raise OptionError(f"plot: one dataset at a time, got {len(args.path)} paths (or pass run folders)")
    args.path = args.path[0]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pdekit.data import open_dataset

    dataset = open_dataset(args.path, args.split)
    item = dataset[args.sample]
    names = list(item)
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        value = item[name].float()
        if value.ndim == 3:  # 3D: the middle slice along the last axis
            value = value[..., value.shape[-1] // 2]
        if value.ndim == 1:
            x = dataset.coords.get(dataset.field_info[name].get("dims", ["x"])[0])
            ax.plot(x.numpy() if x is not None else range(len(value)), value.numpy())
        else:
            image = ax.imshow(value.numpy().T, origin="lower", cmap="viridis")
            fig.colorbar(image, ax=ax, shrink=0.8)
        ax.set_title(f"{name} ({dataset.field_info[name].get('role', '')})")
    fig.suptitle(f"{Path(args.path).name}: {args.split} sample {args.sample}")
    fig.tight_layout()
    out = args.out or f"{Path(args.path).name}-{args.split}-{args.sample}.png"
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")
    return 0


def _cmd_export(args) -> int:
    from pdekit.data import export_dataset

    for path in export_dataset(args.path, args.out, args.format):
        print(f"wrote {path}")
    return 0


def _cmd_train(args) -> int:
    from pdekit.train import load_train_recipe, train_from_recipe

    overrides = {} if args.epochs is None else {"epochs": args.epochs}
    max_time = None if args.max_time is None else 60.0 * args.max_time
    recipe = load_train_recipe(args.recipe, args.set)
    out = args.out or (args.recipe if Path(args.recipe).is_dir() else None)  # a run folder: itself
    if args.device == "cpu" and os.environ.get("LOCAL_RANK") is None:  # torchrun: cores are shared by design
        from pdekit.bench.record import busy_cores_elsewhere, contention_warning

        warning = contention_warning(busy_cores_elsewhere())
        if warning:
            print(f"train: {warning}", file=sys.stderr)
    trainer = train_from_recipe(recipe, out=out, device=args.device, resume=args.resume,
                                progress=not args.no_progress, workers=args.workers,
                                max_time=max_time, **overrides)
    if trainer.rank == 0:
        part, metric = trainer.select.split("_", 1)
        print(f"trained to epoch {trainer.epoch}; best {'validation' if part == 'val' else part} "
              f"{metric.replace('_', ' ')} {trainer.best:.4g}; "
              f"checkpoints in {trainer.out}")
        if trainer.stopped_early:
            print(f"stopped by --max-time ({args.max_time:g} min) after epoch {trainer.epoch} of "
                  f"{trainer.settings.epochs}; continue with --resume")
    return 0


def _cmd_evaluate(args) -> int:
    from pdekit.data import open_dataset
    from pdekit.models import CheckpointError, load_checkpoint, load_model
    from pdekit.train.task import build_task

    path = Path(args.checkpoint)
    if path.is_dir():
        path = path / "best.pt" if (path / "best.pt").is_file() else path / "last.pt"
    data = load_checkpoint(path)
    meta = data.get("metadata", {})
    folder = args.dataset or meta.get("dataset")
    if folder is None:
        raise FileNotFoundError("the checkpoint names no dataset; pass --dataset DIR")
    if not Path(folder).exists():
        raise FileNotFoundError(f"the dataset {folder!r} does not exist "
                                "(generate it with `pdekit generate`, or pass --dataset DIR)")
    split = args.split or meta.get("test_split", "test")
    dataset = open_dataset(folder, split)
    trained_on = [*meta.get("inputs", []), *meta.get("outputs", [])]
    fields = sorted(dataset[0]) if len(dataset) else []
    missing = [name for name in trained_on if name not in fields]
    if missing:
        raise CheckpointError(
            f"{path.name} holds a {data['model']!r} model trained on the fields {trained_on}, but "
            f"the dataset {str(folder)!r} has {fields}: a checkpoint of another model or dataset?")
    model = load_model(path, device=args.device)
    task = build_task(meta.get("task"))
    result = task.report(model, dataset, device=args.device, metadata=meta)
    result.update({"checkpoint": str(path), "model": data["model"], "dataset": str(folder), "split": split})
    print(f"{data['model']} on {folder} ({split}, {len(dataset)} samples): {task.summary(result)}")
    if _chosen_on_this_split(data, path, folder, split):
        result["chosen_on_this_split"] = True
        print(f"evaluate: note: {path.name} is the epoch that scored best on this very split during "
              "training (the run held out no validation set), so this figure is optimistic; evaluate "
              "last.pt, or train with training.validation_fraction > 0", file=sys.stderr)
    if args.against:
        result["against"] = _paired_against(result, args.against)
        c = result["against"]
        print(f"against {args.against}: relative L2 difference {c['mean_difference']:+.3g} +- "
              f"{c['standard_error']:.2g} (standard error of the paired mean), ratio "
              f"{c['ratio']:.3f}, lower on {100 * c['lower_fraction']:.0f}% of the samples")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    plot = args.plot or (Path(args.json).with_suffix(".png") if args.json else None)
    if plot is not None:
        written = task.plot(model, dataset, plot, device=args.device, metadata=meta)
        if written is not None:
            print(f"wrote {written}")
    return 0


def _chosen_on_this_split(data: dict, path: Path, folder, split: str) -> bool:
    """Whether ``path`` is a run's ``best.pt`` chosen on the test metric of the very dataset
    split being evaluated (no ``validation_fraction``): its figure is then optimistic."""
    settings = (data.get("training") or {}).get("settings") or {}
    meta = data.get("metadata", {})
    trained_on = meta.get("dataset")
    return (path.name == "best.pt" and "validation_fraction" in settings
            and not settings["validation_fraction"] and trained_on is not None
            and Path(trained_on).resolve() == Path(folder).resolve()
            and split == meta.get("test_split", "test"))


def _paired_against(result: dict, other_path: str) -> dict:
    """:func:`~pdekit.train.evaluate.paired_comparison` of ``result`` against a saved
    ``pdekit evaluate --json`` result on the same dataset split."""
    from pdekit.train.evaluate import paired_comparison

    path = Path(other_path)
    if not path.is_file():
        raise FileNotFoundError(f"--against: {other_path!r} does not exist (write one with "
                                "`pdekit evaluate RUN --json FILE`)")
    try:
        other = json.loads(path.read_text())
        theirs = [float(v) for v in other["per_sample"]]
    except (ValueError, KeyError, TypeError):
        raise OptionError(f"--against: {other_path!r} is not a `pdekit evaluate --json` result "
                         "with per-sample relative L2 errors") from None
    ours = result.get("per_sample")
    if not isinstance(ours, list) or not all(isinstance(v, float) for v in ours):
        raise OptionError("--against: this task reports no per-sample relative L2 errors")
    where = (other.get("dataset"), other.get("split"))
    if where != (result["dataset"], result["split"]) or len(theirs) != len(ours):
        raise OptionError(f"--against: {other_path!r} holds {len(theirs)} samples of "
                         f"{where[0]!r} ({where[1]}), this evaluation {len(ours)} of "
                         f"{result['dataset']!r} ({result['split']}): not the same samples")
    return {"path": other_path, "model": other.get("model"), **paired_comparison(ours, theirs)}


def _cmd_info(args) -> int:
    import scipy

    if args.path is not None:
        return _dataset_summary(Path(args.path))
    print(f"pdekit {__version__}")
    print(f"torch {torch.__version__}, scipy {scipy.__version__}, numpy {np.__version__}")
    cuda = torch.cuda.is_available()
    print(f"CUDA: {'yes, ' + torch.cuda.get_device_name(0) if cuda else 'no'}")
    print(f"CPU threads: {torch.get_num_threads()}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``pdekit`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="pdekit",
        description="pdekit: classical PDE solvers, shared sparse linear algebra, learned solvers.",
    )
    parser.add_argument("--version", action="version", version=f"pdekit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    solve = sub.add_parser(
        "solve", help="solve a linear system (a Poisson problem or a matrix file)",
        description="Solve A x = b with pdekit's CG or SOR. PROBLEM is poisson2d, poisson3d, "
                    "or a .npz (scipy.sparse.save_npz) / .mtx (Matrix Market) file.",
    )
    solve.add_argument("problem", metavar="PROBLEM", help="poisson2d, poisson3d, or a .npz / .mtx file")
    solve.add_argument("--size", type=int, default=256, help="grid points per axis (default 256)")
    solve.add_argument("--bc", default="dirichlet", choices=["dirichlet", "neumann"],
                       help="boundary condition of every face")
    solve.add_argument("--solid-fraction", type=float, default=0.0,
                       help="fraction of random solid cells (default 0)")
    solve.add_argument("--rhs", help=".npy file with b (default: uniform random, seeded)")
    solve.add_argument("--method", default="cg", choices=["cg", "sor"], help="the solver")
    solve.add_argument("--precond", default="none",
                       choices=["none", "jacobi", "ssor", "ichol0", "multigrid"],
                       help="multigrid needs a grid problem (poisson2d, poisson3d)")
    solve.add_argument("--omega", type=float, default=1.0, help="SOR/SSOR relaxation factor")
    solve.add_argument("--rtol", type=float, default=1e-6,
                       help="stop at ||b - A x|| <= max(rtol ||b||, atol)")
    solve.add_argument("--atol", type=float, default=0.0, help="absolute residual tolerance")
    solve.add_argument("--maxiter", type=int, default=None, help="iteration limit (default 10 n)")
    solve.add_argument("--device", type=_device, default="cpu", help="cpu or cuda")
    solve.add_argument("--dtype", choices=sorted(_DTYPES), default=None, help="default float64")
    solve.add_argument("--seed", type=int, default=0, help="seed of the obstacles and the random b")
    solve.add_argument("--out", help="write the solution to this .npy file")
    solve.add_argument("--json", action="store_true", help="print one JSON line")
    solve.set_defaults(handler=_cmd_solve)

    bench = sub.add_parser("bench", help="run a benchmark (ours vs peers) and write JSON + plot")
    from pdekit.bench import BENCHMARKS

    bench.add_argument("name", help=f"benchmark name: {', '.join(BENCHMARKS)}")
    bench.add_argument("--json", help="output JSON path (default runs/bench/NAME.json)")
    bench.add_argument("--plot", help="output PNG path (default next to the JSON)")
    bench.add_argument("--device", type=_device, default="cpu", help="cpu or cuda")
    bench.add_argument("--dtype", choices=sorted(_DTYPES), default=None,
                       help="default: the benchmark's own")
    bench.add_argument("--problems", help="comma-separated problem names, e.g. poisson3d-64")
    bench.add_argument("--rtol", type=float, default=None, help="solver tolerance (default 1e-6)")
    bench.add_argument("--quick", action="store_true", help="tiny problems (a smoke run)")
    bench.add_argument("--from", dest="sources", default=None, metavar="REPORTS",
                       help="comma-separated saved reports (JSON) of this benchmark: run nothing; "
                            "print their records as one table, and write them as one --plot / --json")
    bench.add_argument("--sequence", default=None, help="sor-bandit: the sequence (shifted, heat)")
    bench.add_argument("--instances", type=int, default=None,
                       help="sor-bandit, dcdm: number of systems in the sequence")
    bench.add_argument("--seeds", type=int, default=None, help="number of seeds to average over")
    bench.add_argument("--checkpoint", default=None,
                       help="dcdm, mesh-movers: the network to benchmark (default: the shipped one)")
    bench.add_argument("--depth", type=_non_negative_int, default=None,
                       help="dcdm: directions each DCDM direction is A-orthogonalised against "
                            "(default 2, the paper's)")
    bench.add_argument("--scales", type=_scales, default=None,
                       help="dcdm: grid scales the network cycles over, e.g. 1,2,4 (default 1: its own "
                            "grid only)")
    bench.add_argument("--max-fraction", type=_solid_fraction, default=None,
                       help="dcdm: solid fraction of the last system; the sequence steps from 0 "
                            "to it (default 0.3)")
    bench.add_argument("--methods", type=_dcdm_methods, default=None,
                       help="dcdm: comma-separated methods to run, e.g. pdekit-cg,pdekit-dcdm "
                            "(default: all)")
    bench.set_defaults(handler=_cmd_bench)

    demo = sub.add_parser(
        "demo", help="the main job: see pdekit work end to end (about ten minutes on a CPU)",
        description="Generate a Darcy dataset and a 3D Poisson-with-obstacles sequence, train a "
                    "Latent Spectral Model and compare it with the classical solver, solve the "
                    "sequence with CG, multigrid-PCG and the shipped learned preconditioner "
                    "(DCDM), run Sinkhorn against Sinkhorn-Newton-Sparse and a bandit-tuned SOR "
                    "against fixed omega; write a report with tables and plots.")
    demo.add_argument("--out", default="runs/demo", help="report folder (default runs/demo)")
    demo.add_argument("--device", default="cpu", help="cpu or cuda")
    demo.add_argument("--seed", type=int, default=0, help="seeds data, model and bandit (default 0)")
    demo.add_argument("--quick", action="store_true", help="a smaller run (under a minute)")
    demo.add_argument("--workers", type=int, default=None,
                      help="processes generating the datasets (default: one per CPU core; 1 with --quick)")
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")
    demo.set_defaults(handler=_cmd_demo)

    generate = sub.add_parser(
        "generate", help="generate a dataset from a recipe (sharded HDF5)",
        description="Generate a dataset from a TOML recipe into sharded HDF5 files and a "
                    "manifest. Resumable: run the same command again after an interruption.")
    generate.add_argument("recipe", help="recipe file, e.g. datasets/darcy.toml")
    generate.add_argument("--out", required=True, help="output folder")
    generate.add_argument("--samples", type=int, default=None, help="cap every split at N samples")
    generate.add_argument("--seed", type=int, default=None, help="override the recipe's seed")
    generate.add_argument("--workers", type=int, default=None,
                          help="local worker processes (default: one per CPU core; one with --device)")
    generate.add_argument("--scheduler", default=None,
                          help="Dask distributed scheduler address (tcp://host:port)")
    generate.add_argument("--device", default="cpu",
                          help="where the solver runs, e.g. cuda (navier-stokes2d, ks1d, burgers2d; "
                               "default cpu)")
    generate.add_argument("--batch", type=int, default=None,
                          help="samples solved at once (default: the problem's; larger on a GPU)")
    generate.add_argument("--no-progress", action="store_true", help="no progress bar")
    generate.set_defaults(handler=_cmd_generate)

    plot = sub.add_parser(
        "plot", help="plot one sample of a dataset, or the learning curves of training runs, to a PNG",
        description="Plot one sample of a dataset (every field), or the training loss and test metric "
                    "against the epoch of one or several training run folders (metrics.jsonl).")
    plot.add_argument("path", nargs="+",
                      help="dataset folder (or a PDEBench / The Well file), or run folders")
    plot.add_argument("--sample", type=int, default=0, help="sample index in the split (dataset)")
    plot.add_argument("--split", default="train", help="split name (dataset)")
    plot.add_argument("--metric", default=None,
                      help="test metric of run folders (default: the one that picks best.pt)")
    plot.add_argument("--out", help="PNG path (default <dataset>-<split>-<sample>.png, <run>-curves.png "
                                    "or learning-curves.png)")
    plot.set_defaults(handler=_cmd_plot)

    export = sub.add_parser("export", help="write a dataset in PDEBench's or The Well's layout")
    export.add_argument("path", help="dataset folder")
    export.add_argument("--format", required=True, choices=["pdebench", "the-well"])
    export.add_argument("--out", required=True, help="output folder (one file per split)")
    export.set_defaults(handler=_cmd_export)

    train = sub.add_parser(
        "train", help="train a learned solver from a recipe (solvers/*.toml)",
        description="Train the model of a recipe on its dataset (generated first when the recipe "
                    "names a dataset recipe). Writes metrics.jsonl, best.pt and last.pt to --out.")
    train.add_argument("recipe", help="training recipe, e.g. solvers/deeponet-antiderivative.toml, or "
                                      "a run folder (its recipe.json; with --resume, continues it)")
    train.add_argument("--out", default=None,
                       help="run folder (default runs/<recipe name>, or the run folder given as recipe)")
    train.add_argument("--device", type=_device, default="cpu", help="cpu or cuda")
    train.add_argument("--resume", action="store_true", help="continue from <out>/last.pt")
    train.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="change one recipe key, e.g. --set model.width=32 --set training.lr=5e-4 "
                            "(repeatable; VALUE read as TOML; the run's recipe.json records the result)")
    train.add_argument("--max-time", type=_positive_float, default=None, metavar="MINUTES",
                       help="wall-clock budget: stop (evaluated, last.pt written) before an epoch "
                            "that would overrun it; continue later with --resume")
    train.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                       help="processes generating the dataset if it is missing")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(handler=_cmd_train)

    evaluate = sub.add_parser(
        "evaluate", help="evaluate a checkpoint on a dataset (relative L2 per sample, plots)",
        description="Evaluate a trained model (a run folder or a .pt checkpoint) on a dataset's "
                    "test split: relative L2 per sample with mean and spread, other metrics, a PNG.")
    evaluate.add_argument("checkpoint", help="run folder (uses best.pt) or checkpoint file")
    evaluate.add_argument("--dataset", default=None, help="dataset folder (default: the one trained on)")
    evaluate.add_argument("--split", default=None, help="split to evaluate (default test)")
    evaluate.add_argument("--json", default=None, help="write the metrics JSON here")
    evaluate.add_argument("--plot", default=None, help="PNG of predictions (default next to --json)")
    evaluate.add_argument("--device", type=_device, default="cpu", help="cpu or cuda")
    evaluate.add_argument("--against", default=None, metavar="JSON",
                          help="another model's `pdekit evaluate --json` result on the same samples: "
                               "print (and save) the paired difference of relative L2")
    evaluate.set_defaults(handler=_cmd_evaluate)

    info = sub.add_parser("info", help="versions and devices, or a dataset's summary and integrity")
    info.add_argument("path", nargs="?", default=None, help="a dataset folder")
    info.set_defaults(handler=_cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pdekit`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    from pdekit.classical.elliptic import SolveError
    from pdekit.data import DatasetExistsError, GenerateArgumentError, RecipeError
    from pdekit.models import CheckpointError

    expected = (RecipeError, DatasetExistsError, GenerateArgumentError, SolveError, PermissionError,
                FileNotFoundError, CheckpointError, OptionError)
    try:
        return args.handler(args)
    except expected as err:  # user errors: one clear line, no traceback
        if os.environ.get("PDEKIT_DEBUG"):
            raise
        print(f"pdekit {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
