import json

import pytest

from pdekit.bench.generate import run
from pdekit.cli import main


def test_quick_generate_benchmark_matches_spsolve_and_writes_records(tmp_path):
    path = tmp_path / "generate.json"
    assert main(["bench", "generate", "--quick", "--json", str(path)]) == 0
    data = json.loads(path.read_text())
    assert data["benchmark"] == "generate"
    assert (tmp_path / "generate.png").stat().st_size > 0
    records = {(r["problem"], r["method"]): r for r in data["records"]}
    for problem in ("darcy-61-16", "poisson3d-16-obstacles"):
        for method in ("pdekit-multigrid-pcg", "pdekit-ichol0-pcg", "pdekit-cg", "scipy-spsolve"):
            record = records[problem, method]
            assert record["samples_per_second"] > 0
            if method != "scipy-spsolve":
                # the same systems: our checked solves agree with the sparse direct solve
                assert record["error"] < 1e-6
        # multigrid needs far fewer iterations than plain CG on the same samples
        assert (records[problem, "pdekit-multigrid-pcg"]["iterations"]
                < records[problem, "pdekit-cg"]["iterations"] / 5)


def test_generate_benchmark_refuses_bad_arguments():
    with pytest.raises(ValueError, match="unknown problem"):
        run(problems=["darcy-7"])
    with pytest.raises(ValueError, match="unknown method"):
        run(methods=("cholmod",))
    with pytest.raises(ValueError, match="`device` must be cpu"):
        run("cuda")
