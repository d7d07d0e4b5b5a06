"""Every script in examples/ runs, in its quick mode where it has one, from a scratch folder
that sees the repository's recipes and checkpoints (what it writes stays there). The examples
with a test of their own (tests/models/test_*example*.py and the refiner's) are only checked
to have one."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(p.name for p in (ROOT / "examples").glob("*.py"))

# script -> (arguments, a line its output must match)
RUNS = {
    "generate_dataset.py": (["--quick"], r"darcy: \{'train': 2, 'test': 2\} in 2 shard"),
    "generate_on_gpu.py": (["--quick"], r"t=20: \d\.\de-0[6-9]"),  # float32 files against float64
    "train_operator.py": (["--quick", "--out", "runs/example"], r"test relative L2 \d"),
    "optimal_transport.py": ([], r"sparsity-constrained, k=3: at most [123] nonzeros per column"),
    "bandit_sor.py": (["--quick"], r"PooledChebCB: +\d"),
}
SLOW_RUNS = {
    "poisson_cg.py": ([], r"scipy cg with our IC\(0\): info=0"),
    "multigrid_convergence.py": ([], r"\| 3D spheres/boxes 20% 64\^3 \|"),
}


def run_example(name: str, arguments: list[str], tmp_path: Path) -> str:
    for entry in ("datasets", "solvers", "examples"):
        (tmp_path / entry).symlink_to(ROOT / entry)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    result = subprocess.run([sys.executable, str(ROOT / "examples" / name), *arguments], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.parametrize("name", sorted(RUNS))
def test_example_runs(name, tmp_path):
    arguments, expected = RUNS[name]
    out = run_example(name, arguments, tmp_path)
    assert re.search(expected, out), out


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SLOW_RUNS))
def test_slow_example_runs(name, tmp_path):
    arguments, expected = SLOW_RUNS[name]
    out = run_example(name, arguments, tmp_path)
    assert re.search(expected, out), out


def test_every_example_is_run_by_a_test():
    tests = "\n".join(p.read_text() for p in (ROOT / "tests").rglob("test_*.py")
                      if p.name != "test_examples.py")
    for name in EXAMPLES:
        assert name in RUNS or name in SLOW_RUNS or name in tests, f"examples/{name} is run by no test"
