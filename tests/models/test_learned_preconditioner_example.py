import re
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "learned_preconditioner_cg.py"


def test_learned_preconditioner_example_quick_mode():
    out = subprocess.run([sys.executable, str(EXAMPLE), "--quick"], capture_output=True, text=True,
                         check=True, timeout=600).stdout
    iterations = {name.strip(): int(n) for name, n in
                  re.findall(r"^(CG|CG, M = network|DCDM)\s+CONVERGED\s+(\d+) iterations", out, re.M)}
    assert set(iterations) == {"CG", "CG, M = network", "DCDM"}, out
    assert iterations["DCDM"] < iterations["CG"] and iterations["CG, M = network"] < iterations["CG"]
