import json

import pytest

from pdekit.bench.ot import make_problem, summary_table
from pdekit.cli import main


def test_quick_ot_benchmark_writes_the_record_format(tmp_path, capsys):
    path = tmp_path / "ot.json"
    assert main(["bench", "ot", "--quick", "--json", str(path)]) == 0
    data = json.loads(path.read_text())
    assert data["benchmark"] == "ot"
    assert {"device", "pdekit_version", "date", "records"} <= set(data)
    assert (tmp_path / "ot.png").stat().st_size > 0
    records = data["records"]
    for r in records:
        assert isinstance(r["problem"], str) and isinstance(r["method"], str)
    by = {(r["problem"], r["kind"], r["method"]): r for r in records}
    name = "images12-l2"
    exact = by[(name, "exact", "pot-emd")]["cost"]
    sk = by[(name, "convergence", "pdekit-sinkhorn")]
    sns = by[(name, "convergence", "pdekit-sns")]
    for r in (sk, sns):
        assert r["status"] == "CONVERGED" and r["marginal_error"] <= 1e-10
        assert r["history_marginal_error"][-1] <= 1e-10 < r["history_marginal_error"][0]
        assert len(r["history_iterations"]) == len(r["history_seconds"])
    # the same entropic problem: equal costs, within 1e-8 of each other, near the exact cost
    assert abs(sk["cost"] - sns["cost"]) <= 1e-8 * sk["cost"]
    assert abs(sk["cost"] - exact) <= 1e-3 * exact
    assert sns["iteration_ratio"] == sk["iterations"] / sns["iterations"] >= 10
    # equal marginal error: ours stopped at (or below) the violation POT reached
    pot = by[(name, "equal-error", "pot-sinkhorn-log")]
    ours = by[(name, "equal-error", "pdekit-sinkhorn")]
    assert ours["marginal_error"] <= pot["marginal_error"]
    assert abs(ours["cost"] - pot["cost"]) <= 1e-6 * pot["cost"]
    assert pot["ratio_to_pdekit"] == pytest.approx(pot["seconds"] / ours["seconds"])
    assert by[(name, "kernel", "pdekit-sinkhorn-iteration")]["seconds"] > 0
    assert "ratio_to_pdekit" in capsys.readouterr().out
    assert "iteration_ratio" in summary_table(type("R", (), {"records": records})())


def test_unknown_problem_is_refused():
    with pytest.raises(ValueError, match="unknown problem"):
        make_problem("points-ten")
    assert make_problem("assignment-7-eta10")["eps"] == pytest.approx(0.1)
