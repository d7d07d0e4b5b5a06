"""The mesh-mover and MM-PDE tasks on a tiny generated Burgers dataset: batches, one epoch of
the Trainer, and the reports `pdekit evaluate` writes."""

from __future__ import annotations

import dataclasses
import statistics

import pytest
import torch

from pdekit.data import generate, open_dataset
from pdekit.data.recipe import load_recipe
from pdekit.models import MMPDE, DataFreeMeshMover, UniformGNN
from pdekit.train import Trainer
from pdekit.train.tasks.mesh_movers import (
    CoarseTrajectories,
    MeshMoverTask,
    NextStepTask,
    coarse_trajectories,
)

MOVER = {"channels": [4, 4, 4, 4], "width": 16, "trunk": [16], "head": [16], "frequencies": 4,
         "alpha": 1.0}


@pytest.fixture(scope="module")
def burgers_tiny(tmp_path_factory):
    recipe = load_recipe("datasets/burgers2d.toml")
    params = dataclasses.replace(recipe.parameters, points=32, frames=4, t_end=0.3)
    recipe = dataclasses.replace(recipe, parameters=params, samples_per_shard=4,
                                 splits={"train": 4, "test": 2})
    out = tmp_path_factory.mktemp("burgers") / "burgers"
    generate(recipe, out, progress=False)
    return out


def test_coarse_batches(burgers_tiny):
    dataset = open_dataset(burgers_tiny, "train")
    assert dataset[0]["u"].shape == (4, 32, 32)
    coarse, fine = coarse_trajectories(dataset, 16)
    torch.testing.assert_close(coarse, fine[..., ::2, ::2])
    states = CoarseTrajectories(coarse, pairs=False)
    pairs = CoarseTrajectories(coarse, pairs=True)
    assert len(states) == 16 and len(pairs) == 12
    u, nxt, t = next(iter(pairs.batches(12)))
    torch.testing.assert_close(u[:3], coarse[0, :3].float())
    torch.testing.assert_close(nxt[:3], coarse[0, 1:4].float())
    torch.testing.assert_close(t[:3], torch.tensor([0.0, 1 / 3, 2 / 3]))
    random = CoarseTrajectories(coarse, pairs=True, per_trajectory=2)
    assert len(random) == 8


def test_mesh_mover_task_trains_and_reports(burgers_tiny, tmp_path):
    torch.manual_seed(0)
    train, test = open_dataset(burgers_tiny, "train"), open_dataset(burgers_tiny, "test")
    task = MeshMoverTask(size=16, points=16, boundary_points=4, frame_stride=2, eval_states=4)
    model = DataFreeMeshMover(16, **MOVER)
    trainer = Trainer(model, train, test, task=task, epochs=1, batch_size=8, amp=False,
                      normalization="none", out=tmp_path / "run", progress=False)
    trainer.fit()
    report = task.report(trainer.model, test)
    m = report["metrics"]
    for key in ("interpolation_error", "interpolation_error_uniform", "tangled_cells",
                "interpolation_error_classical", "equidistribution_spread"):
        assert key in m
    assert m["tangled_cells"] == 0 and m["meshes"] == 2
    assert 0 < m["interpolation_error_classical"] < m["interpolation_error_uniform"] < 1
    assert task.plot(trainer.model, test, tmp_path / "mesh.png").exists()
    # the cosine-basis mover on the monitor, under random symmetries of the square
    task = MeshMoverTask(size=16, points=16, boundary_points=4, frame_stride=2, eval_states=4,
                         augment=True)
    model = DataFreeMeshMover(16, channels=[4, 4, 4, 4], width=16, alpha=1.0, basis=6,
                              branch_input="monitor")
    trainer = Trainer(model, train, test, task=task, epochs=2, batch_size=8, amp=False,
                      normalization="none", progress=False)
    history = trainer.fit()
    assert all(torch.isfinite(torch.tensor(h["train_loss"])) for h in history)
    assert task.report(trainer.model, test)["metrics"]["tangled_cells"] == 0


def test_next_step_task_trains_and_reports(burgers_tiny, tmp_path):
    torch.manual_seed(0)
    train, test = open_dataset(burgers_tiny, "train"), open_dataset(burgers_tiny, "test")
    for model in (UniformGNN(16, hidden=8, layers=1, neighbours=4),
                  MMPDE(16, hidden=8, layers=1, neighbours=4, interpolation_neighbours=4,
                        interpolation_hidden=8, mover=MOVER)):
        task = NextStepTask(size=16, pretrain_steps=2, eval_trajectories=2)
        trainer = Trainer(model, train, test, task=task, epochs=1, batch_size=4, amp=False,
                          normalization="none", optimizer="adamw", progress=False)
        trainer.fit()
        report = task.report(trainer.model, test)
        m = report["metrics"]
        assert m["trajectories"] == 2 and m["rollout_steps"] == 3
        assert m["one_step_mse"] > 0 and m["relative_l2"] > 0
        per_trajectory = torch.tensor(report["relative_l2_per_trajectory"])
        assert len(per_trajectory) == 2
        torch.testing.assert_close(float(per_trajectory.mean()), m["relative_l2"])
        torch.testing.assert_close(statistics.median(report["relative_l2_per_trajectory"]),
                                   m["relative_l2_median"])
