"""The physics-informed (hard / soft constraint) task on a tiny generated diffusion-sorption
dataset: batches, a short Trainer run of the MoE hard constraint, and `pdekit evaluate`."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from pdekit.cli import main
from pdekit.data import generate, open_dataset
from pdekit.data.recipe import load_recipe
from pdekit.models import build_model
from pdekit.train import Trainer, TrainingSettings
from pdekit.train.tasks.hard_constraints import PhysicsInformedTask, Trajectories

SMALL = dict(modes=(3, 3), width=8, layers=2, fc_dim=16, padding=2)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    recipe = load_recipe("datasets/diffusion-sorption.toml")
    params = dataclasses.replace(recipe.parameters, nx=64, nt=11, t_end=100.0, substeps=4)
    recipe = dataclasses.replace(recipe, parameters=params, samples_per_shard=8,
                                 splits={"train": 8, "test": 4})
    out = tmp_path_factory.mktemp("ds") / "ds"
    generate(recipe, out, progress=False)
    return out


def test_trajectories_subsample_and_truncate(tiny):
    dataset = open_dataset(tiny, "train")
    assert dataset[0]["u"].shape == (11, 64)
    data = Trajectories(dataset, stride=2, frames=9)
    u, t, x = next(data.batches(3))
    assert u.shape == (3, 9, 32) and t.shape == (9,) and x.shape == (32,)
    torch.testing.assert_close(u[1], dataset[1]["u"][:9, ::2])
    # a constant initial value, and the inflow boundary raising u near x = 0
    assert float(u[:, 0].std(dim=1).max()) < 1e-6 and bool((u[:, -1, 0] > u[:, 0, 0]).all())


def test_training_lowers_the_physics_loss_and_evaluate_reports(tiny, tmp_path):
    torch.manual_seed(0)
    train, test = open_dataset(tiny, "train"), open_dataset(tiny, "test")
    task = PhysicsInformedTask(stride=2, train_frames=9)
    model = build_model("pi-hc", basis=4, experts=2, points=60, **SMALL)
    settings = TrainingSettings(epochs=6, batch_size=4, lr=3e-3, normalization="none", amp=False,
                                eval_every=3, checkpoint_every=3)
    trainer = Trainer(model, train, test, settings, task=task, out=tmp_path / "run", progress=False)
    history = trainer.fit()
    losses = [r["train_loss"] for r in history if "train_loss" in r]
    assert losses[-1] < losses[0]
    record = [r for r in history if "test_relative_l2" in r][-1]
    assert 0 <= record["test_relative_l2"] and record["test_residual_max"] >= 0
    out = tmp_path / "eval.json"
    assert main(["evaluate", str(tmp_path / "run"), "--dataset", str(tiny), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    metrics = result["metrics"]
    assert {"relative_l2", "residual_max", "relative_l2_extrapolated", "lm_iterations",
            "reference_residual_max", "seconds_per_sample"} <= set(metrics)
    assert result["grid"] == [11, 32] and result["train_frames"] == 9
    assert (tmp_path / "eval.png").stat().st_size > 0


def test_navier_stokes_trajectories_and_a_short_moe_run(tmp_path):
    recipe = load_recipe("datasets/navier-stokes2d.toml")
    params = dataclasses.replace(recipe.parameters, size=16, test_size=32, nt=5, t_end=0.5)
    recipe = dataclasses.replace(recipe, parameters=params, samples_per_shard=4,
                                 splits={"train": 4, "test": 2})
    generate(recipe, tmp_path / "ns", progress=False)
    train, test = open_dataset(tmp_path / "ns", "train"), open_dataset(tmp_path / "ns", "test")
    assert test[0]["w"].shape == (5, 32, 32)
    task = PhysicsInformedTask(stride=1)
    torch.manual_seed(1)
    model = build_model("pi-hc3d", basis=4, experts=[2, 2], points=40, modes=[2, 2, 2], width=6, layers=2,
                        fc_dim=8)
    settings = TrainingSettings(epochs=2, batch_size=2, lr=1e-3, normalization="none", amp=False)
    history = Trainer(model, train, train, settings, task=task, progress=False).fit()
    assert all(r["train_loss"] > 0 for r in history)
    metrics = task.report(model, test, device="cpu")["metrics"]  # at 32^2: twice the training grid
    assert metrics["relative_l2"] > 0 and metrics["residual_max"] > 0 and 1 <= metrics["lm_iterations"] <= 50
