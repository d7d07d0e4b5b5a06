import json

import pytest

from pdekit.bench import run_benchmark
from pdekit.bench.linalg import make_poisson
from pdekit.cli import main


def test_quick_linalg_benchmark_writes_the_record_format(tmp_path, capsys):
    path = tmp_path / "linalg.json"
    assert main(["bench", "linalg", "--quick", "--json", str(path)]) == 0
    data = json.loads(path.read_text())
    assert data["benchmark"] == "linalg"
    assert {"device", "pdekit_version", "date", "records"} <= set(data)
    assert (tmp_path / "linalg.png").stat().st_size > 0
    records = data["records"]
    methods = {r["method"] for r in records}
    assert {"pdekit-stencil", "pdekit-csr-int32", "torch-csr-int64", "scipy-csr",
            "pdekit-cg-stencil", "scipy-cg", "pyamg-sa-pcg"} <= methods
    for r in records:
        assert isinstance(r["problem"], str) and isinstance(r["method"], str)
    cg = {r["method"]: r for r in records if r["problem"] == "poisson2d-64" and r["kind"] == "cg"}
    # ours and SciPy's CG agree on the work done and reach the tolerance
    assert cg["pdekit-cg-stencil"]["iterations"] == cg["scipy-cg"]["iterations"]
    assert cg["pdekit-cg-stencil"]["relative_residual"] <= 1e-6
    assert cg["pyamg-sa-pcg"]["iterations"] < 20
    assert "ratio_to_pdekit" in cg["scipy-cg"]
    assert "ratio_to_pdekit" in capsys.readouterr().out


def test_unknown_benchmark_and_problem_are_refused():
    with pytest.raises(ValueError, match="unknown benchmark"):
        run_benchmark("nothing")
    with pytest.raises(ValueError, match="unknown problem"):
        make_poisson("poisson7d-3")
