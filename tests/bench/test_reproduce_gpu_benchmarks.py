"""examples/reproduce_gpu_benchmarks.py: its steps run in quick mode on the CPU, the paper run
resumes from its folder, steps beyond the budget are skipped, and compilation is chosen from
the bench report."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("reproduce_gpu_benchmarks",
                                              ROOT / "examples" / "reproduce_gpu_benchmarks.py")
reproduce = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = reproduce  # dataclasses look their module up
spec.loader.exec_module(reproduce)


def _summary(out: Path) -> dict:
    return {s["step"]: s for s in json.loads((out / "summary.json").read_text())["steps"]}


def _run(tmp_path: Path, steps: str, budget: float = 600) -> int:
    return reproduce.main(["--out", str(tmp_path / "out"), "--runs", str(tmp_path / "runs"), "--quick",
                           "--device", "cpu", "--budget", str(budget), "--steps", steps])


def test_inference_and_paper_run_then_resume(tmp_path):
    assert _run(tmp_path, "lsm-inference,lsm-paper") == 0
    steps = _summary(tmp_path / "out")
    assert steps["lsm-inference"]["returncode"] == 0
    timing = json.loads((tmp_path / "out" / "lsm-inference.json").read_text())
    assert timing["resolution"] == {} and timing["timing"]["lsm_batch1_seconds"] > 0  # --timing-only
    assert (tmp_path / "runs" / "lsm-inference.json").is_file()  # kept for later calls
    assert "trained to epoch 1" in steps["lsm-paper"]["output_tail"]
    assert "--resume" not in steps["lsm-paper"]["command"]
    metrics = (tmp_path / "out" / "lsm-paper-metrics.jsonl").read_text().splitlines()
    assert json.loads(metrics[-1])["epoch"] == 1

    assert _run(tmp_path, "lsm-paper") == 0  # a second call continues the run folder
    assert "--resume" in _summary(tmp_path / "out")["lsm-paper"]["command"]


@pytest.mark.slow
def test_every_benchmark_step_in_quick_mode(tmp_path):
    assert _run(tmp_path, "bench-train,dcdm,dcdm-256") == 0
    out = tmp_path / "out"
    assert all(s["returncode"] == 0 for s in _summary(out).values())
    for report in ("bench-train.json", "bench-dcdm.json", "bench-dcdm-256.json"):
        assert json.loads((out / report).read_text())["records"]
    assert (tmp_path / "runs" / "bench-dcdm.png").is_file()  # plots stay out of --out
    assert len(list(out.iterdir())) <= 8


def test_steps_beyond_the_budget_are_skipped(tmp_path):
    assert _run(tmp_path, "bench-train,dcdm", budget=5) == 0
    steps = _summary(tmp_path / "out")
    assert "needs at least" in steps["bench-train"]["skipped"] and "returncode" not in steps["dcdm"]


def test_unknown_step_is_named(tmp_path, capsys):
    with pytest.raises(SystemExit):
        _run(tmp_path, "bench-train,fno")
    assert "unknown step 'fno'" in capsys.readouterr().err


def test_compile_is_chosen_when_the_bench_found_it_faster(tmp_path):
    path = tmp_path / "bench-train.json"
    assert not reproduce.compile_helps(path)  # no report
    for compiled, expected in [(150.0, True), (105.0, False)]:
        rates = {"pdekit-trainer-bf16": 100.0, "pdekit-trainer-bf16-compile": compiled}
        records = [{"problem": "lsm-85", "method": m, "samples_per_second": r} for m, r in rates.items()]
        path.write_text(json.dumps({"records": records}))
        assert reproduce.compile_helps(path) is expected


def test_navier_stokes_data_step_generates_on_the_device(tmp_path):
    assert _run(tmp_path, "ns-fno-data") == 0
    step = _summary(tmp_path / "out")["ns-fno-data"]
    assert step["returncode"] == 0 and "--device cpu" in step["command"]
    manifest = json.loads((tmp_path / "runs" / "navier-stokes2d-fno-cpu" / "manifest.json").read_text())
    assert manifest["splits"] == {"train": 2, "test": 2}
    assert {s["device"] for s in manifest["shards"]} == {"cpu"}


def test_navier_stokes_paper_run_then_resume(tmp_path):
    assert _run(tmp_path, "lsm-ns-paper") == 0
    step = _summary(tmp_path / "out")["lsm-ns-paper"]
    assert "solvers/lsm-ns.toml" in step["command"] and "trained to epoch 1" in step["output_tail"]
    metrics = (tmp_path / "out" / "lsm-ns-paper-metrics.jsonl").read_text().splitlines()
    assert json.loads(metrics[-1])["epoch"] == 1 and "test_relative_l2" in json.loads(metrics[-1])
    assert _run(tmp_path, "lsm-ns-paper") == 0  # a second call continues the run folder
    assert "--resume" in _summary(tmp_path / "out")["lsm-ns-paper"]["command"]
