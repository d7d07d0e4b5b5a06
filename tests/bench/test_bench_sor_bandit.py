import json

import pytest

from pdekit.bench.sor_bandit import run, summary_table
from pdekit.cli import main


def test_quick_sor_bandit_benchmark_writes_records_and_plot(tmp_path, capsys):
    path = tmp_path / "sor-bandit.json"
    assert main(["bench", "sor-bandit", "--quick", "--json", str(path)]) == 0
    data = json.loads(path.read_text())
    assert data["benchmark"] == "sor-bandit"
    assert {"device", "pdekit_version", "date", "records"} <= set(data)
    assert (tmp_path / "sor-bandit.png").stat().st_size > 0
    summary = {r["method"]: r for r in data["records"] if r.get("kind") == "summary"}
    assert {"sor-omega-1", "sor-omega-1.8", "best-fixed-omega", "instance-optimal",
            "tsallis-inf", "tsallis-inf-cb", "chebcb", "pooled-chebcb"} <= set(summary)
    for r in data["records"]:
        assert r["problem"] == "shifted-high-variance" and isinstance(r["method"], str)
    best = summary["best-fixed-omega"]["iterations"]
    for name, r in summary.items():
        if name.startswith("sor-omega"):
            assert r["iterations"] >= best
        if name != "instance-optimal-young":
            assert r["iterations"] >= summary["instance-optimal"]["iterations"]
    # Gauss-Seidel is several times slower than the best fixed omega on these systems
    assert summary["sor-omega-1"]["iterations"] > 3 * best
    assert summary["best-fixed-omega"]["ratio_to_best_fixed"] == 1.0
    curves = [r for r in data["records"] if r.get("kind") == "curve"]
    assert len(curves[0]["cumulative_iterations"]) == len(curves[0]["instance"])
    out = capsys.readouterr().out
    assert "ratio_to_best_fixed" in out and "pooled-chebcb" in out


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="sequence"):
        run("cpu", sequence="spiral")
    with pytest.raises(ValueError, match="instances"):
        run("cpu", instances=0)
    with pytest.raises(ValueError, match="cpu"):
        run("cuda")
    with pytest.raises(ValueError, match="unknown options"):
        run("cpu", problems=["x"])
    assert "method" in summary_table(type("R", (), {"records": []})())
