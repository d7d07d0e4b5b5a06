"""``pdekit demo``: the quick run finishes, reports real numbers and plots, and is seeded."""

import json

import pytest
import torch

from pdekit.bench.demo import SIZES, run_demo
from pdekit.cli import main

PLOTS = ("darcy-predictions.png", "darcy-training.png", "poisson-convergence.png",
         "transport-convergence.png", "sor-bandit.png")


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    lines: list[str] = []
    report = run_demo(out, quick=True, seed=0, workers=1, progress=False, echo=lines.append)
    return out, report, lines, json.loads((out / "results.json").read_text())


def test_quick_demo_writes_a_report_with_tables_and_plots(quick_demo):
    out, report, lines, _ = quick_demo
    assert report == out / "report.md"
    text = report.read_text()
    for k in range(1, 6):
        assert f"## {k}. " in text
    for name in PLOTS:
        assert (out / name).stat().st_size > 5_000, name  # a real figure, not an empty canvas
        assert f"]({name})" in text
    # one line of result per step, then where the report is (after a warning if the CPU is busy)
    lines = [line for line in lines if not line.startswith("demo: warning")]
    assert [line[:5] for line in lines[1:6]] == ["[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]"]
    assert str(report) in lines[-1]


def test_quick_demo_numbers_are_real(quick_demo):
    *_, results = quick_demo
    steps = results["steps"]
    data = steps["Datasets"]["datasets"]
    sizes = SIZES["quick"]
    assert data[0]["samples"] == sizes.darcy_train + sizes.darcy_test
    assert data[1]["samples"] == sizes.poisson_systems

    operator = steps["Neural operator (Darcy)"]
    # a model that learned something about the coefficient, however briefly
    assert 0 < operator["relative_l2"] < operator["mean_field_relative_l2"]
    assert operator["classical_ms"] > 0 and operator["model_ms_batched"] > 0

    poisson = steps["Learned preconditioner (3D Poisson with obstacles)"]
    solves = {row["method"]: row for row in poisson["summary"]}
    for row in solves.values():
        assert row["converged"] == f"{sizes.poisson_systems}/{sizes.poisson_systems}"
        assert row["error_vs_dataset"] < 1e-3  # the same solution as the classical dataset
    assert solves["multigrid-PCG"]["iterations"] < solves["CG"]["iterations"]
    assert solves["DCDM (learned)"]["iterations"] < solves["CG"]["iterations"]

    sinkhorn, sns = steps["Optimal transport"]["rows"]
    assert sinkhorn["status"] == sns["status"] == "CONVERGED"
    assert sns["iterations"] < sinkhorn["iterations"] / 10
    assert sns["cost"] == pytest.approx(sinkhorn["cost"], rel=1e-6)

    bandit = steps["SOR with a bandit-tuned relaxation factor"]["rows"]
    sor = {row["method"]: row["iterations_per_system"] for row in bandit}
    assert sor["bandit (PooledChebCB)"] < sor["omega = 1 (Gauss-Seidel)"]
    assert sor["instance-optimal"] <= min(sor.values())


@pytest.mark.slow
def test_demo_is_reproducible_from_its_seed(quick_demo, tmp_path):
    *_, first = quick_demo
    run_demo(tmp_path, quick=True, seed=0, workers=1, progress=False, echo=lambda line: None)
    second = json.loads((tmp_path / "results.json").read_text())["steps"]
    first = first["steps"]
    assert second["Neural operator (Darcy)"]["relative_l2"] == pytest.approx(
        first["Neural operator (Darcy)"]["relative_l2"], rel=1e-5)
    for key in ("Learned preconditioner (3D Poisson with obstacles)",):
        iterations = [[r["iterations"] for r in runs] for runs in first[key]["systems"].values()]
        again = [[r["iterations"] for r in runs] for runs in second[key]["systems"].values()]
        assert iterations == again
    key = "SOR with a bandit-tuned relaxation factor"
    assert first[key] == second[key]


@pytest.mark.parametrize("device", ["tpu", "cuda"])
def test_demo_refuses_a_device_it_cannot_use(device, tmp_path, capsys):
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("CUDA is present")
    assert main(["demo", "--quick", "--device", device, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "device" in err and "Traceback" not in err
