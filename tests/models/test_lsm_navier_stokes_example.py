"""examples/lsm_navier_stokes.py (LSM and U-Net on Navier-Stokes frame windows) in its quick mode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("model", ["lsm", "unet"])
def test_lsm_navier_stokes_example_quick(model, tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "lsm_navier_stokes.py"), "--quick",
                             "--model", model, "--out", str(tmp_path)], capture_output=True, text=True,
                            timeout=600, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "result.json").read_text())
    assert report["model"] == model and report["grid"] == 32
    # 4 trajectories of 12 frames, windows of 4 + 4 frames every 2nd start: 3 per trajectory
    assert (report["train_windows"], report["test_windows"]) == (12, 6)
    assert 0 < report["persistence_relative_l2"] < 1
    assert report["test_relative_l2"] > 0
    assert (tmp_path / "best.pt").is_file()
