"""examples/lsm_navier_stokes.py (LSM and U-Net rolled out on Navier-Stokes frames) in its quick mode."""

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
    # 4 trajectories of 12 frames, windows of 4 + 4 frames every 2nd frame from frame 1: 2 each
    assert (report["train_windows"], report["test_windows"]) == (8, 4)
    assert report["frames_per_call"] == 1
    assert 0 < report["persistence_relative_l2"] < 1
    assert report["test_relative_l2"] > 0
    assert (tmp_path / "best.pt").is_file()
