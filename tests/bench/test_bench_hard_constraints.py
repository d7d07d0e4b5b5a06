import json

import pytest

from pdekit.bench.hard_constraints import summary_table
from pdekit.cli import main


@pytest.mark.slow  # about 20 s: torch.func warm-up in every configuration
def test_quick_hard_constraint_benchmark_writes_the_record_format(tmp_path):
    path = tmp_path / "hc.json"
    assert main(["bench", "hard-constraints", "--quick", "--json", str(path)]) == 0
    data = json.loads(path.read_text())
    assert data["benchmark"] == "hard-constraints"
    assert (tmp_path / "hc.png").stat().st_size > 0
    records = data["records"]
    methods = {(r["method"], r["experts"], r["points"]) for r in records}
    assert methods == {("pi-sc", 0, 0), ("pi-hc", 1, 200), ("pi-hc", 1, 400), ("pi-hc-moe", 2, 200),
                       ("pi-hc-moe", 2, 400)}
    for r in records:
        assert r["train_seconds"] > 0 and r["inference_seconds"] > 0
        if r["method"] != "pi-sc":
            assert 1 <= r["train_lm_iterations"] <= 50
        if r["method"] == "pi-hc-moe":
            base = next(g for g in records if g["method"] == "pi-hc" and g["points"] == r["points"])
            assert abs(r["train_speedup"] - base["train_seconds"] / r["train_seconds"]) < 1e-12
    assert "train_speedup" in summary_table(type("R", (), {"records": records})())
