"""Data-parallel training: two CPU processes (gloo) under torchrun follow the single-process
loss curve."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

from pdekit.models import DeepONet
from pdekit.train import Trainer
from tests.train.tiny import AntiderivativeData

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = dict(epochs=4, batch_size=16, lr=1e-3, normalization="none", progress=False)

SCRIPT = """
import sys
import torch
from pdekit.models import DeepONet
from pdekit.train import Trainer
from tests.train.tiny import AntiderivativeData

torch.set_num_threads(1)
torch.manual_seed(0)
model = DeepONet([16, 64, 64], [1, 64, 64])
trainer = Trainer(model, AntiderivativeData(64, 0), AntiderivativeData(32, 1), out=sys.argv[1], **{settings})
trainer.fit()
"""


def test_two_process_ddp_matches_the_single_process_loss_curve(tmp_path):
    torch.manual_seed(0)
    model = DeepONet([16, 64, 64], [1, 64, 64])
    single = Trainer(model, AntiderivativeData(64, 0), AntiderivativeData(32, 1), **SETTINGS).fit()
    script = tmp_path / "ddp_train.py"
    script.write_text(textwrap.dedent(SCRIPT.format(settings=repr(SETTINGS))))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(script), str(tmp_path / "run")]
    run = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == SETTINGS["epochs"]  # only the first process writes
    for ours, theirs in zip(single, lines, strict=True):
        assert abs(ours["train_loss"] - theirs["train_loss"]) <= 1e-4 * ours["train_loss"]
        assert abs(ours["test_relative_l2"] - theirs["test_relative_l2"]) <= 1e-4 * ours["test_relative_l2"]
    assert lines[-1]["train_loss"] < 0.75 * lines[0]["train_loss"]  # and it learns
