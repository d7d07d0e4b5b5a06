"""The autoregressive frame-window task (FNO / LSM Navier-Stokes protocol): windows, rollouts
against hand computations, a short training run that learns a translation, and `pdekit
evaluate` of its checkpoint on a tiny generated Navier-Stokes dataset."""

from __future__ import annotations

import json

import pytest
import torch

from pdekit.cli import main as cli
from pdekit.data import generate, open_dataset
from pdekit.data.recipe import recipe_from_dict
from pdekit.train import Trainer
from pdekit.train.rollout import rollout_frames
from pdekit.train.task import build_task
from pdekit.train.tasks.frame_rollout import FrameRolloutTask, FrameWindows


class Translating(torch.utils.data.Dataset):
    """Trajectories ``w(t, x, y) = f(x - t h, y)``: a smooth random field moved one cell per frame."""

    def __init__(self, count: int, seed: int, frames: int = 9, n: int = 12, dtype=torch.float32):
        g = torch.Generator().manual_seed(seed)
        k = torch.arange(n, dtype=torch.float64) * 2 * torch.pi / n
        c = torch.randn(count, 2, 2, 2, generator=g, dtype=torch.float64)
        f = sum(c[:, i, j, 0, None, None] * torch.cos((i + 1) * k[:, None] + (j + 1) * k[None, :])
                + c[:, i, j, 1, None, None] * torch.sin((i + 1) * k[:, None] - j * k[None, :])
                for i in range(2) for j in range(2))
        self.w = torch.stack([torch.roll(f, t, dims=1) for t in range(frames)], dim=1).to(dtype)
        self.field_info = {"w": {"role": "output"}}

    def __len__(self):
        return len(self.w)

    def __getitem__(self, i):
        return {"w": self.w[i]}


class LastFrame(torch.nn.Module):
    """Persistence: the next frame is the last one."""

    def forward(self, x):
        return x[:, -1:]


class Shift(torch.nn.Module):
    """The exact model of :class:`Translating`: the last frame moved one cell (``k`` copies of
    successive shifts)."""

    def __init__(self, k: int = 1):
        super().__init__()
        self.k = k

    def forward(self, x):
        return torch.stack([torch.roll(x[:, -1], j + 1, dims=1) for j in range(self.k)], dim=1)


def test_windows_start_where_asked():
    data = Translating(3, 0, frames=9)
    one = FrameWindows(data, history=3, steps=4, first=1)
    assert len(one) == 3
    x, y = next(one.batches(8))
    torch.testing.assert_close(x, data.w[:, 1:4])
    torch.testing.assert_close(y, data.w[:, 4:8])
    many = FrameWindows(data, history=3, steps=4, every=2)  # starts 0 and 2 (4 would need frame 10)
    assert len(many) == 6
    x, y = many.window(torch.tensor([1, 4]))
    torch.testing.assert_close(x[0], data.w[0, 2:5])
    torch.testing.assert_close(y[1], data.w[2, 3:7])
    # data-parallel shares: each process a part of every global batch; a batch too small to share is skipped
    shares = [list(one.batches(2, rank=r, world=2)) for r in (0, 1)]
    assert [len(s) for s in shares] == [1, 1]
    torch.testing.assert_close(shares[1][0][0][0], data.w[1, 1:4])
    with pytest.raises(ValueError, match="no window"):
        FrameWindows(data, history=5, steps=5)
    with pytest.raises(KeyError, match="'u'"):
        FrameWindows(data, field="u")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("k", [1, 2])
def test_rollout_of_the_exact_model_is_exact_and_feeds_back_its_frames(dtype, k):
    data = Translating(4, 1, frames=10, dtype=dtype)
    x, y = FrameWindows(data, history=2, steps=6, first=1, dtype=dtype).window(torch.arange(4))
    pred = rollout_frames(Shift(k), x, 6)
    assert pred.shape == y.shape and pred.dtype == dtype
    torch.testing.assert_close(pred, y, rtol=0, atol=0)
    # persistence repeats the last input frame: the error of each frame is a hand computation
    stay = rollout_frames(LastFrame(), x, 6)
    torch.testing.assert_close(stay, x[:, -1:].expand_as(y))


def test_evaluate_and_report_score_the_rolled_out_frames():
    data = Translating(5, 2, frames=9)
    task = FrameRolloutTask(history=3, steps=4, first=1)
    batches = task.make_batches(data)
    assert task.evaluate(Shift(), batches, device="cpu")["test_relative_l2"] == 0.0
    x, y = batches.window(torch.arange(5))
    stay = x[:, -1:].expand_as(y)
    expected = ((stay - y).flatten(1).norm(dim=1) / y.flatten(1).norm(dim=1))
    metrics = task.evaluate(LastFrame(), batches, device="cpu")
    assert metrics["test_relative_l2"] == pytest.approx(float(expected.mean()), rel=1e-6)
    last = (stay[:, -1] - y[:, -1]).flatten(1).norm(dim=1) / y[:, -1].flatten(1).norm(dim=1)
    assert metrics["test_last_frame_relative_l2"] == pytest.approx(float(last.mean()), rel=1e-6)
    report = task.report(LastFrame(), data)
    assert report["metrics"]["relative_l2"] == pytest.approx(report["metrics"]["persistence_relative_l2"])
    assert len(report["per_frame"]) == 4 and len(report["per_sample"]) == 5
    assert report["per_frame"][0] < report["per_frame"][-1]  # persistence worsens with the lead time


def test_loss_back_propagates_through_the_whole_rollout():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(1, 1, 3, padding=1, padding_mode="circular")
    x = torch.randn(2, 1, 12, 12)
    # with one frame of history the 4th predicted frame is conv(conv(conv(conv(x))))
    (through,) = torch.autograd.grad(rollout_frames(conv, x, 4)[:, -1].square().sum(), conv.weight)
    (composed,) = torch.autograd.grad(conv(conv(conv(conv(x)))).square().sum(), conv.weight)
    (last_call,) = torch.autograd.grad(conv(conv(conv(conv(x))).detach()).square().sum(), conv.weight)
    torch.testing.assert_close(through, composed)
    assert not torch.allclose(through, last_call, rtol=1e-2)  # the fed-back frames carry gradient
    # the loss of a window: the mean over the predicted frames of each frame's relative L2
    data = Translating(2, 3, frames=8)
    task = FrameRolloutTask(history=1, steps=4)
    window, target = next(task.make_batches(data).batches(2))
    pred = rollout_frames(conv, window, 4)
    expected = torch.stack([(pred[:, i] - target[:, i]).flatten(1).norm(dim=1)
                            / target[:, i].flatten(1).norm(dim=1) for i in range(4)], dim=1).mean(1)
    torch.testing.assert_close(task.loss(conv, (window, target)), expected)


@pytest.mark.parametrize("normalization", ["none", "field", "pointwise"])
def test_normalisation_uses_one_set_of_statistics_for_input_and_output(normalization):
    data = Translating(6, 4, frames=8)
    task = FrameRolloutTask(history=2, steps=3)
    settings = type("S", (), {"normalization": normalization})()
    wrapped = task.wrap_model(LastFrame(), task.make_batches(data), data, settings)
    x = torch.randn(2, 2, 12, 12)
    torch.testing.assert_close(wrapped(x), x[:, -1:], rtol=1e-5, atol=1e-5)  # identity stays identity


def test_training_learns_the_translation():
    torch.manual_seed(0)
    train, test = Translating(32, 5), Translating(8, 6)
    model = torch.nn.Conv2d(3, 1, 3, padding=1, padding_mode="circular")
    task = FrameRolloutTask(history=3, steps=4, first=1)
    trainer = Trainer(model, train, test, task=task, epochs=60, batch_size=8, lr=2e-2, normalization="none",
                      progress=False)
    before = trainer.evaluate()["test_relative_l2"]
    history = trainer.fit()
    after = history[-1]["test_relative_l2"]
    assert after < 0.1 * before  # 1.13 -> 0.07 at this seed


@pytest.fixture(scope="module")
def navier_stokes_tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("ns") / "ns"
    recipe = recipe_from_dict({
        "name": "ns-fno-tiny", "pde": "navier-stokes2d", "seed": 0, "splits": {"train": 6, "test": 3},
        "parameters": {"size": 16, "test_size": 16, "nt": 9, "t_end": 8.0, "nu": 1e-3,
                       "initial": "fno", "forcing": "fno"}})
    generate(recipe, out, progress=False)
    return out


def test_checkpoint_evaluates_from_the_command_line(navier_stokes_tiny, tmp_path):
    from pdekit.models import UNet

    train, test = open_dataset(navier_stokes_tiny, "train"), open_dataset(navier_stokes_tiny, "test")
    assert train[0]["w"].shape == (9, 16, 16)
    task = FrameRolloutTask(history=4, steps=4, first=1)
    trainer = Trainer(UNet(4, 1, width=4), train, test, task=task, epochs=2, batch_size=3,
                      normalization="field", out=tmp_path / "run", progress=False,
                      metadata={"dataset": str(navier_stokes_tiny)})
    trainer.fit()
    assert build_task(json.loads(json.dumps(trainer.metadata["task"]))).steps == 4
    result = tmp_path / "eval.json"
    assert cli(["evaluate", str(tmp_path / "run"), "--json", str(result)]) == 0
    report = json.loads(result.read_text())
    assert report["metrics"]["windows"] == 3 and len(report["per_frame"]) == 4
    assert 0 < report["metrics"]["persistence_relative_l2"] < 2
    assert result.with_suffix(".png").is_file()
    assert cli(["evaluate", str(tmp_path / "run"), "--against", str(result)]) == 0  # paired over windows
