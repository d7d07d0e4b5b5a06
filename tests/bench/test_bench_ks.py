import json

from pdekit.cli import main


def test_quick_ks_benchmark_agrees_with_radau_and_writes_records(tmp_path):
    path = tmp_path / "ks.json"
    assert main(["bench", "ks", "--quick", "--json", str(path)]) == 0
    data = json.loads(path.read_text())
    assert data["benchmark"] == "ks"
    assert (tmp_path / "ks.png").stat().st_size > 0
    records = {r["method"]: r for r in data["records"]}
    assert set(records) == {"pdekit-etdrk4-batch", "pdekit-etdrk4-single", "scipy-radau"}
    for method in ("pdekit-etdrk4-batch", "pdekit-etdrk4-single"):
        # the same trajectories as Radau at rtol 1e-9 over the first 4 s
        assert records[method]["error"] < 1e-6
        assert records[method]["samples_per_second"] > records["scipy-radau"]["samples_per_second"]
