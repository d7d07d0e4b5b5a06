"""The PDE-Refiner task on a tiny generated KS dataset: batches, the report against a hand
computation with a persistence model, and a short training run of both models."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from pdekit.data import generate, open_dataset
from pdekit.data.recipe import load_recipe
from pdekit.linalg._threads import serial_on_cpu
from pdekit.train.tasks.refiner import (
    OneStepTask,
    RefinerTask,
    TrajectoryBatches,
    plot_rollout_comparison,
)


@pytest.fixture(scope="module")
def ks_tiny(tmp_path_factory):
    recipe = load_recipe("datasets/ks1d.toml")
    params = dataclasses.replace(recipe.parameters, points=64, length=(22.0, 24.0), burn_in=50,
                                 frames=21, eval_frames=33)
    recipe = dataclasses.replace(recipe, parameters=params, samples_per_shard=8,
                                 splits={"train": 8, "test": 4})
    out = tmp_path_factory.mktemp("ks") / "ks"
    generate(recipe, out, progress=False)
    return out


def test_trajectory_batches_step_every_fourth_frame_from_random_offsets(ks_tiny):
    dataset = open_dataset(ks_tiny, "train")
    assert dataset[0]["u"].shape == (21, 64)
    assert open_dataset(ks_tiny, "test")[0]["u"].shape == (33, 64)  # eval_frames elsewhere
    batches = TrajectoryBatches(dataset, stride=4)
    torch.manual_seed(0)
    starts = set()
    u, u_next, scalars = next(batches.batches(8))
    for b in range(8):
        trajectory = dataset[b]["u"]
        t0 = int(torch.nonzero((trajectory == u[b, 0]).all(-1))[0])
        starts.add(t0)
        assert 0 <= t0 <= 16
        torch.testing.assert_close(u_next[b, 0], trajectory[t0 + 4])
    assert len(starts) > 1
    # the model's scalars: dt of four frames, dx = L / points
    length = scalars[:, 1] * 64
    assert ((length > 22.0) & (length < 24.0)).all()
    assert ((scalars[:, 0] > 4 * 0.18) & (scalars[:, 0] < 4 * 0.22)).all()


class Persistence(torch.nn.Module):
    """u(t + dt) = u(t)."""

    def forward(self, u, scalars=None, generator=None):
        return u[:, -1:]


def test_report_of_persistence_matches_a_hand_computation(ks_tiny, tmp_path):
    dataset = open_dataset(ks_tiny, "test")
    result = RefinerTask(stride=4).report(Persistence(), dataset)
    u = np.stack([dataset[i]["u"].double().numpy() for i in range(len(dataset))])
    steps = (33 - 1) // 4
    corr = np.array([[np.corrcoef(u[b, 0], u[b, 4 * k])[0, 1] for k in range(1, steps + 1)]
                     for b in range(len(u))]).mean(0)
    np.testing.assert_allclose(result["correlation"], corr, rtol=1e-5)
    m = result["metrics"]
    dt = np.mean([float(v) for v in TrajectoryBatches(dataset).scalars[:, 0]])
    assert m["high_correlation_time"] == pytest.approx((corr > 0.8).sum() * dt, rel=1e-5)
    rel = np.mean([np.linalg.norm(u[b, 4] - u[b, 0]) / np.linalg.norm(u[b, 4]) for b in range(len(u))])
    assert m["relative_l2"] == pytest.approx(rel, rel=1e-5)
    assert len(result["error_spectrum"]["error"]) == 33
    assert plot_rollout_comparison({"persistence": result}, tmp_path / "c.png").stat().st_size > 0


@pytest.mark.parametrize("task_cls", [RefinerTask, OneStepTask])
def test_a_few_steps_reduce_the_loss(ks_tiny, task_cls):
    from pdekit.models import OneStepUNet, PDERefiner

    torch.manual_seed(0)
    model_cls = PDERefiner if task_cls is RefinerTask else OneStepUNet
    model = model_cls(hidden=8, widths=(8, 16), blocks=1)
    task = task_cls(eval_trajectories=2)
    batches = task.make_batches(open_dataset(ks_tiny, "train"))
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    fixed = next(batches.batches(8))

    def loss():
        torch.manual_seed(1)  # the same refinement levels and noise each time
        with torch.no_grad():
            return float(task.loss(model, fixed).mean())

    before = loss()
    with serial_on_cpu(torch.device("cpu")):  # tiny kernels: threads only add waiting
        for _ in range(30):
            for batch in batches.batches(8):
                optimiser.zero_grad()
                task.loss(model, batch).mean().backward()
                optimiser.step()
    # the v-prediction target at the low noise levels is mostly the noise itself: slower
    assert loss() < (0.8 if task_cls is RefinerTask else 0.5) * before
    metrics = task.evaluate(model, task.make_batches(open_dataset(ks_tiny, "test"), random_offset=False),
                            device="cpu")
    assert set(metrics) >= {"test_high_correlation_time", "test_relative_l2"}
