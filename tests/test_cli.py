import json
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

from pdekit.cli import main


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("solve", "bench", "demo", "info"):
        assert command in out


def test_python_m_pdekit_runs_the_commands():
    result = subprocess.run([sys.executable, "-m", "pdekit", "info"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("pdekit ")
    assert subprocess.run([sys.executable, "-m", "pdekit", "nonsense"], capture_output=True).returncode == 2


def test_solve_a_poisson_problem_as_json(capsys):
    assert main(["solve", "poisson3d", "--size", "12", "--precond", "ichol0", "--rtol", "1e-8",
                 "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["status"] == "CONVERGED" and record["n"] == 12**3
    assert record["relative_residual"] <= 1e-8


def test_solve_a_matrix_file_and_write_the_solution(tmp_path, capsys):
    n = 50
    S = sp.diags([-np.ones(n - 1), 2.5 * np.ones(n), -np.ones(n - 1)], [-1, 0, 1]).tocsr()
    sp.save_npz(tmp_path / "A.npz", S)
    b = np.arange(n, dtype=float)
    np.save(tmp_path / "b.npy", b)
    out = tmp_path / "x.npy"
    assert main(["solve", str(tmp_path / "A.npz"), "--rhs", str(tmp_path / "b.npy"),
                 "--rtol", "1e-12", "--out", str(out)]) == 0
    assert "CONVERGED" in capsys.readouterr().out
    np.testing.assert_allclose(S @ np.load(out), b, atol=1e-9)


def test_solve_reports_failure_with_exit_code(capsys):
    assert main(["solve", "poisson2d", "--size", "32", "--maxiter", "3"]) == 1
    assert "maxiter" in capsys.readouterr().out


def test_solve_rejects_unknown_problem():
    with pytest.raises(SystemExit, match="neither a problem"):
        main(["solve", "helmholtz9d"])
