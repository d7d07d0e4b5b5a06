"""Reproduce the GPU figures of docs/benchmarks.md in one sitting, within a time budget.

The steps, most wanted first. Each runs as its own process (a failure or a hang ends that step
only), is started only while enough of the budget is left, and may use all that is left:

``bench-train``
    ``pdekit bench train --problems lsm``: the paper-configuration Latent Spectral Model
    (``solvers/lsm-darcy.toml``, width 64, batch 20) trained in float32, bf16 and bf16 with
    ``torch.compile``: samples per second, peak memory and the projected hours of the paper's
    501 epochs.
``lsm-inference``
    ``examples/lsm_darcy_study.py --timing-only``: the shipped LSM's inference time per sample
    against the classical Darcy solve, both on the device.
``dcdm``
    ``pdekit bench dcdm`` at 64^3 and 128^3 (four systems, 0-30% solid; DCDM at depth 20 on
    grid scales 1, 2, 4): iterations and set-up + solve seconds to 1e-4 and 1e-6 of CG,
    multigrid-PCG, PyAMG-PCG, DCDM and flexible CG with the network. IC(0)-PCG, whose
    triangular solves run on the host CPU, is left out: the CPU tables have it.
``dcdm-256``
    The same at 256^3 on the obstacle-free system: CG, multigrid-PCG and DCDM (scales 1, 2, 4, 8).
``ns-fno-data`` (not in the default steps)
    ``pdekit generate datasets/navier-stokes2d-fno.toml --device cuda --batch 200``: the LSM
    paper's Navier-Stokes data solved as FNO does (256^2, 8000 steps; about a day on two CPU
    threads) into ``data/navier-stokes2d-fno``, where ``solvers/lsm-ns.toml`` and
    ``solvers/unet-ns.toml`` look for it. Its seconds are the figure; the dataset (about 400 MB)
    stays on the machine. Resumable by shard.
``lsm-paper`` (not in the default steps)
    The paper-budget LSM run: ``pdekit train solvers/lsm-darcy.toml`` into ``--runs``/lsm-darcy,
    the Darcy dataset generated first if missing, stopped cleanly by ``--max-time`` before the
    budget ends and continued (``--resume``) by the next call that finds the run folder. It
    trains with ``torch.compile`` when the ``bench-train`` step of the same call found it faster.
``lsm-ns-paper`` (not in the default steps)
    The same for the paper-budget LSM on Navier-Stokes: ``solvers/lsm-ns.toml`` into
    ``--runs``/lsm-ns, its data (``ns-fno-data``) generated on the device first if missing.

Everything lands in ``--out`` as at most eight files: ``summary.json`` (per step the command,
its exit status, seconds and the end of its output), the benchmark reports
(``bench-train.json``, ``lsm-inference.json``, ``bench-dcdm.json``, ``bench-dcdm-256.json``) and
the paper runs' ``lsm-paper-metrics.jsonl`` and ``lsm-ns-paper-metrics.jsonl``. Plots, full
logs and copies of the reports go to ``--runs``; redraw a plot from its report with ``pdekit bench dcdm --from
OUT/bench-dcdm.json --plot FILE.png``.

Run from the repository root (installed, or with ``PYTHONPATH=.``)::

    python examples/reproduce_gpu_benchmarks.py --out runs/gpu-reports --budget 540
    python examples/reproduce_gpu_benchmarks.py --out runs/gpu-reports --budget 540 --steps lsm-paper
    python examples/reproduce_gpu_benchmarks.py --out runs/gpu-reports --budget 540 --steps lsm-ns-paper

``--quick`` runs every step at smoke sizes (minutes on a CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STEPS = ("bench-train", "lsm-inference", "dcdm", "dcdm-256", "ns-fno-data", "lsm-paper", "lsm-ns-paper")
DEFAULT_STEPS = STEPS[:4]
DCDM_METHODS = "pdekit-cg,pdekit-pcg-multigrid,pyamg-rs-pcg,pdekit-dcdm,pdekit-fcg-dcdm"
COMPILE_GAIN = 1.1  # train the paper run compiled when compilation is at least this much faster


@dataclass
class Step:
    """One command of the reproduction, and the least time it is worth starting with."""

    name: str
    command: list[str]
    min_seconds: float


def pdekit(*args: str) -> list[str]:
    return [sys.executable, "-m", "pdekit", *args]


def compile_helps(bench_train_json: Path) -> bool:
    """Whether the bf16 + ``torch.compile`` Trainer beat the bf16 one on the LSM in a saved
    ``pdekit bench train`` report (False without such a report)."""
    if not bench_train_json.is_file():
        return False
    records = json.loads(bench_train_json.read_text()).get("records", [])
    rate = {r["method"]: r["samples_per_second"] for r in records if r["problem"].startswith("lsm")}
    if "pdekit-trainer-bf16-compile" not in rate or "pdekit-trainer-bf16" not in rate:
        return False
    return rate["pdekit-trainer-bf16-compile"] >= COMPILE_GAIN * rate["pdekit-trainer-bf16"]


def data_command(args, name: str) -> list[str] | None:
    """Generating the dataset of paper run ``name`` (None in a quick run, whose ``pdekit train``
    generates its few samples itself): Darcy on every CPU core, Navier-Stokes on the device.
    Resumable, and quick when complete."""
    if args.quick:
        return None
    if name == "lsm-ns-paper":
        return pdekit("generate", "datasets/navier-stokes2d-fno.toml", "--out", "data/navier-stokes2d-fno",
                      "--device", args.device, "--batch", "200", "--no-progress")
    return pdekit("generate", "datasets/darcy.toml", "--out", "data/darcy", "--workers",
                  str(os.cpu_count() or 1), "--no-progress")


# paper-budget training steps: step -> (training recipe, run folder in --runs, quick-mode settings:
# a narrow model, one epoch, a few samples a split generated into the runs folder)
PAPER_RUNS = {
    "lsm-paper": ("solvers/lsm-darcy.toml", "lsm-darcy",
                  ["--set", "dataset_samples=8", "--set", "data_dir={runs}/darcy"]),
    "lsm-ns-paper": ("solvers/lsm-ns.toml", "lsm-ns",
                     ["--set", 'dataset="datasets/navier-stokes2d-fno-cpu.toml"', "--set",
                      "dataset_samples=2", "--set", "data_dir={runs}/navier-stokes2d-fno-cpu-n2"]),
}


def paper_run_step(args, name: str, minutes: float) -> Step:
    """The paper-budget run of step ``name`` (:data:`PAPER_RUNS`), stopped after ``minutes``;
    resumed when its run folder holds a ``last.pt``."""
    recipe, run, quick = PAPER_RUNS[name]
    folder = args.runs / run
    budget = ["--max-time", f"{minutes:.2f}", "--device", args.device, "--no-progress"]
    if (folder / "last.pt").is_file():
        return Step(name, pdekit("train", str(folder), "--resume", *budget), 120)
    settings: list[str] = []
    if compile_helps(args.runs / "bench-train.json"):  # this call's, or an earlier call's
        settings += ["--set", "training.compile=true"]
    if args.quick:
        settings += ["--set", "model.width=8", "--epochs", "1",
                     *(option.format(runs=args.runs) for option in quick)]
    return Step(name, pdekit("train", recipe, "--out", str(folder), *settings, *budget), 120)


def bench_steps(args) -> dict[str, Step]:
    """The benchmark steps, as commands."""
    out, runs, device = args.out, args.runs, args.device
    quick = ["--quick"] if args.quick else []

    def bench(name: str, report: str, *options: str) -> list[str]:
        return pdekit("bench", name, "--device", device, "--json", str(out / report),
                      "--plot", str(runs / report.replace(".json", ".png")), *quick, *options)

    dcdm_sizes = [] if args.quick else ["--problems", "poisson3d-64,poisson3d-128", "--instances", "4"]
    big = [] if args.quick else ["--problems", "poisson3d-256"]
    study = [sys.executable, str(ROOT / "examples" / "lsm_darcy_study.py"), "--timing-only", "--device",
             device, "--json", str(out / "lsm-inference.json"), *quick]
    if args.quick:  # the 64^2-solved recipe, two samples a split
        ns_data = ["datasets/navier-stokes2d-fno-cpu.toml", "--out", str(runs / "navier-stokes2d-fno-cpu"),
                   "--samples", "2"]
    else:
        ns_data = ["datasets/navier-stokes2d-fno.toml", "--out", "data/navier-stokes2d-fno", "--batch", "200"]
    return {
        "ns-fno-data": Step("ns-fno-data", pdekit("generate", *ns_data, "--device", device, "--no-progress"),
                            120),
        "bench-train": Step("bench-train", bench("train", "bench-train.json", "--problems", "lsm"), 60),
        "lsm-inference": Step("lsm-inference", study, 30),
        "dcdm": Step("dcdm", bench("dcdm", "bench-dcdm.json", *dcdm_sizes, "--depth", "20", "--scales",
                                   "1,2,4", "--methods", DCDM_METHODS), 120),
        "dcdm-256": Step("dcdm-256", bench("dcdm", "bench-dcdm-256.json", *big, "--instances", "1",
                                           "--depth", "20", "--scales", "1,2,4,8", "--methods",
                                           "pdekit-cg,pdekit-pcg-multigrid,pdekit-dcdm"), 120),
    }


def run_command(command: list[str], seconds: float, log: Path) -> tuple[int | None, str]:
    """Run ``command`` with a limit of ``seconds``; its output goes to ``log``. Returns the exit
    status (None when stopped at the limit) and the output's last lines."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    with log.open("a") as handle:
        handle.write("$ " + " ".join(command) + "\n")
        handle.flush()
        try:
            code = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT, env=env,
                                  timeout=max(seconds, 1)).returncode
        except subprocess.TimeoutExpired:
            code = None
    return code, "\n".join(log.read_text().splitlines()[-15:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder of the reports (few, small files)")
    parser.add_argument("--runs", type=Path, default=Path("runs/gpu"),
                        help="folder of plots, logs and the paper run (default runs/gpu)")
    parser.add_argument("--budget", type=float, default=540.0, help="seconds for all steps together")
    parser.add_argument("--steps", default=",".join(DEFAULT_STEPS),
                        help=f"comma-separated steps, in order (default {','.join(DEFAULT_STEPS)}; "
                             f"all: {','.join(STEPS)})")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="smoke sizes (any device)")
    args = parser.parse_args(argv)
    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    unknown = [s for s in steps if s not in STEPS]
    if unknown or not steps:
        parser.error(f"--steps: unknown step {unknown[0] if unknown else '(none)'!r}; "
                     f"choose from {', '.join(STEPS)}")
    args.out, args.runs = args.out.resolve(), args.runs.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    args.runs.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + args.budget
    summary: dict = {"device": args.device, "budget_seconds": args.budget, "quick": args.quick, "steps": []}
    for name in steps:
        started = time.monotonic()
        code, tail = 0, ""
        data = data_command(args, name) if name in PAPER_RUNS else None
        if data is not None and deadline - started > 120:
            print(f"[{name}] {' '.join(data)}", flush=True)
            code, tail = run_command(data, deadline - started, args.runs / f"{name}.log")
        left = deadline - time.monotonic()
        if name in PAPER_RUNS:
            step = paper_run_step(args, name, minutes=max(left - 90, 0) / 60)  # 90 s: start, evaluation, save
        else:
            step = bench_steps(args)[name]
        record: dict = {"step": name, "command": " ".join(step.command)}
        summary["steps"].append(record)
        if code != 0:
            record.update(returncode=code, seconds=round(time.monotonic() - started, 1), output_tail=tail)
            print(f"[{name}] the dataset failed:\n{tail}", flush=True)
            continue
        if left < step.min_seconds:
            record["skipped"] = f"{left:.0f} s left, the step needs at least {step.min_seconds:.0f} s"
            print(f"[{name}] skipped: {record['skipped']}", flush=True)
            continue
        print(f"[{name}] {record['command']}", flush=True)
        code, tail = run_command(step.command, deadline - time.monotonic(), args.runs / f"{name}.log")
        record.update(returncode=code, seconds=round(time.monotonic() - started, 1), output_tail=tail)
        print(tail, flush=True)
        print(f"[{name}] {'stopped at the budget' if code is None else f'exit {code}'} after "
              f"{record['seconds']} s", flush=True)
        metrics = args.runs / PAPER_RUNS[name][1] / "metrics.jsonl" if name in PAPER_RUNS else None
        if metrics is not None and metrics.is_file():
            shutil.copy(metrics, args.out / f"{name}-metrics.jsonl")
        for report in args.out.glob("*.json"):  # --runs keeps them for later calls (--out may be emptied)
            if report.name != "summary.json":
                shutil.copy(report, args.runs / report.name)
        (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return 0 if all(r.get("returncode", 0) == 0 for r in summary["steps"]) else 1


if __name__ == "__main__":
    sys.exit(main())
