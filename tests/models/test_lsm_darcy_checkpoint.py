"""The shipped Latent Spectral Model (solvers/checkpoints/lsm-darcy.pt) on freshly generated
Darcy samples: through `pdekit evaluate` its error is close to the figure recorded at training
(docs/neural-operators.md); examples/lsm_darcy_study.py runs in its quick mode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pdekit
from pdekit.cli import main
from pdekit.data import generate, load_recipe
from pdekit.data.recipe import read_toml, recipe_from_dict

ROOT = Path(__file__).resolve().parents[2]
CHECKPOINT = ROOT / "solvers" / "checkpoints" / "lsm-darcy.pt"


def test_shipped_lsm_on_fresh_darcy_samples(tmp_path):
    # the generator of datasets/darcy.toml with another seed: 4 test samples never seen in training
    data = read_toml(ROOT / "datasets" / "darcy.toml")
    data.update(seed=2026, splits={"test": 4})
    generate(recipe_from_dict(data), tmp_path / "darcy", progress=False)
    assert load_recipe(ROOT / "datasets" / "darcy.toml").parameters.size == 85

    model = pdekit.load(CHECKPOINT, expected="lsm")
    recorded = model.metadata["metrics"]["test_relative_l2"]  # mean over the 200 test samples
    assert 0.005 < recorded < 0.05, recorded
    out = tmp_path / "eval.json"
    assert main(["evaluate", str(CHECKPOINT), "--dataset", str(tmp_path / "darcy"), "--json", str(out),
                 "--plot", str(tmp_path / "eval.png")]) == 0
    metrics = json.loads(out.read_text())["metrics"]
    assert metrics["samples"] == 4
    # the mean of 4 samples scatters by about std / 2 (std ~ 0.25 x mean); a broken model is
    # off by orders of magnitude
    assert abs(metrics["relative_l2"] - recorded) < 0.4 * recorded, (metrics["relative_l2"], recorded)


def test_lsm_darcy_study_example_quick(tmp_path):
    out = tmp_path / "study.json"
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "lsm_darcy_study.py"), "--quick",
                             "--json", str(out)], capture_output=True, text=True, timeout=600, cwd=ROOT,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    study = json.loads(out.read_text())
    errors = {size: v["direct"]["relative_l2"] for size, v in study["resolution"].items()}
    assert set(errors) == {"43", "85", "141"}
    assert errors["85"] < 0.05, errors  # the training resolution
    assert study["timing"]["speedup_batched"] > 0


def test_lsm_darcy_study_resolution_only(tmp_path):
    out = tmp_path / "study.json"
    script = str(ROOT / "examples" / "lsm_darcy_study.py")
    result = subprocess.run([sys.executable, script, "--quick", "--resolution-only", "--json", str(out)],
                            capture_output=True, text=True, timeout=600, cwd=ROOT,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    study = json.loads(out.read_text())
    assert study["timing"] == {} and set(study["resolution"]) == {"43", "85", "141"}
    both = subprocess.run([sys.executable, script, "--timing-only", "--resolution-only"], capture_output=True,
                          text=True, timeout=600, cwd=ROOT)
    assert both.returncode == 2 and "exclude each other" in both.stderr
