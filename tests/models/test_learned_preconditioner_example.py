import re
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "learned_preconditioner_cg.py"


def test_learned_preconditioner_example_quick_mode():
    out = subprocess.run([sys.executable, str(EXAMPLE), "--quick"], capture_output=True, text=True,
                         check=True, timeout=600).stdout
    pattern = r"^(CG|CG, M = network|DCDM|DCDM, depth 20)\s+CONVERGED\s+(\d+) iterations"
    iterations = {name.strip(): int(n) for name, n in re.findall(pattern, out, re.M)}
    assert set(iterations) == {"CG", "CG, M = network", "DCDM", "DCDM, depth 20"}, out
    assert iterations["DCDM"] < iterations["CG"] and iterations["CG, M = network"] < iterations["CG"]
    assert iterations["DCDM, depth 20"] <= iterations["DCDM"]
