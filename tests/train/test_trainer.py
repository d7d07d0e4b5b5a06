import json

import pytest
import torch

import pdekit
from pdekit.models import DeepONet
from pdekit.train import Trainer, TrainingSettings
from pdekit.train.task import Task
from tests.train.tiny import AntiderivativeData


def _model(seed=0):
    torch.manual_seed(seed)
    return DeepONet([16, 64, 64], [1, 64, 64])


def _trainer(tmp_path, epochs, resume=False, **kw):
    settings = dict(epochs=epochs, batch_size=16, lr=3e-3, normalization="field", progress=False)
    settings.update(kw)
    progress = settings.pop("progress")
    return Trainer(_model(), AntiderivativeData(64, 0), AntiderivativeData(32, 1), out=tmp_path,
                   resume=resume, progress=progress, **settings)


def test_short_training_reduces_the_test_error_by_a_large_factor(tmp_path):
    trainer = _trainer(tmp_path, epochs=150, batch_size=64, lr=3e-3, normalization="none", eval_every=50)
    before = trainer.evaluate()["test_relative_l2"]
    history = trainer.fit()
    after = history[-1]["test_relative_l2"]
    assert after < before / 10, (before, after)
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == list(range(1, 151))
    assert sum("test_relative_l2" in r for r in lines) == 3  # every 50 epochs
    assert lines[-1]["test_relative_l2"] == pytest.approx(after)
    assert {"train_loss", "samples_per_second", "lr", "test_mse"} <= set(lines[-1])


def test_checkpoints_rebuild_the_model_with_no_code(tmp_path):
    trainer = _trainer(tmp_path, epochs=5)
    trainer.fit()
    model = pdekit.load(tmp_path / "last.pt", expected="deeponet")
    x = torch.randn(4, 1, 16)
    trainer.model.eval()
    torch.testing.assert_close(model(x), trainer.model(x), rtol=0, atol=0)
    best = pdekit.load(tmp_path / "best.pt")
    assert best.metadata["inputs"] == ["u"] and best.metadata["outputs"] == ["s"]
    assert best.metadata["metrics"]["test_relative_l2"] == pytest.approx(trainer.best)


def test_cpu_training_flushes_subnormals_and_restores_the_setting(tmp_path):
    def subnormal_survives():
        return float(torch.full((1,), 1e-39) * 1.0) != 0.0

    trainer = _trainer(tmp_path, epochs=2)
    seen = []
    trainer.model.register_forward_hook(lambda *_: seen.append(subnormal_survives()))
    assert subnormal_survives()
    trainer.fit()
    assert seen and not any(seen)  # flushed in every training and test forward pass
    assert subnormal_survives()  # and put back afterwards


def test_resume_after_a_stop_gives_the_same_final_weights(tmp_path):
    straight = _trainer(tmp_path / "a", epochs=6, scheduler="step", step_size=2, gamma=0.5)
    straight.fit()
    first = _trainer(tmp_path / "b", epochs=3, scheduler="step", step_size=2, gamma=0.5)
    first.fit()
    # a new process would start here: build everything again and resume from last.pt
    second = _trainer(tmp_path / "b", epochs=6, resume=True, scheduler="step", step_size=2, gamma=0.5)
    assert second.epoch == 3
    second.fit()
    for (name, a), b in zip(straight.model.state_dict().items(), second.model.state_dict().values(),
                            strict=True):
        assert torch.equal(a, b), name
    lines = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    epochs = [json.loads(line)["epoch"] for line in lines]
    assert epochs == [1, 2, 3, 4, 5, 6]


def test_a_schedule_over_the_epoch_count_cannot_be_resumed_over_another(tmp_path):
    # cosine's learning rate at an epoch depends on the count: 3 epochs of a 6-epoch schedule are
    # not 3 epochs of a 3-epoch one (and onecycle cannot step past its count at all)
    _trainer(tmp_path, epochs=3, scheduler="cosine").fit()
    with pytest.raises(ValueError, match=r"'cosine' schedule over 3 epochs.*resume with epochs = 3"):
        _trainer(tmp_path, epochs=6, resume=True, scheduler="cosine")
    assert _trainer(tmp_path, epochs=3, resume=True, scheduler="cosine").epoch == 3


def test_bad_settings_and_missing_resume_are_refused(tmp_path):
    with pytest.raises(ValueError, match="`loss` must be one of"):
        TrainingSettings(loss="l1")
    with pytest.raises(ValueError, match="`epochs` must be >= 1"):
        TrainingSettings(epochs=0)
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        _trainer(tmp_path, epochs=2, resume=True)
    with pytest.raises(KeyError, match="field 'v' is not in the dataset"):
        Trainer(_model(), AntiderivativeData(8, 0), inputs=["v"], outputs=["s"], progress=False)


@pytest.mark.slow
def test_compiled_training_steps_match_the_plain_ones(tmp_path):
    # torch.compile (inductor; on the CPU it builds C++) reorders floating-point work only
    plain = _trainer(tmp_path / "plain", epochs=3, normalization="none")
    compiled = _trainer(tmp_path / "compiled", epochs=3, normalization="none", compile=True)
    assert compiled.parallel is not compiled.model
    a, b = plain.fit(), compiled.fit()
    for x, y in zip(a, b, strict=True):
        assert y["train_loss"] == pytest.approx(x["train_loss"], rel=1e-4)
    for (name, p), q in zip(plain.model.state_dict().items(), compiled.model.state_dict().values(),
                            strict=True):
        torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-5, msg=name)
    assert list(pdekit.load(tmp_path / "compiled" / "last.pt").state_dict()) == list(plain.model.state_dict())


@pytest.fixture
def compile_with(monkeypatch):
    """``compile_with(backend)`` makes the Trainer's ``torch.compile`` use ``backend`` (a Dynamo
    backend function); Dynamo's caches are cleared before and after the test."""
    real = torch.compile

    def use(backend):
        monkeypatch.setattr(torch, "compile", lambda module: real(module, backend=backend))

    torch._dynamo.reset()
    yield use
    torch._dynamo.reset()


def test_a_failed_compilation_falls_back_to_the_plain_steps(tmp_path, compile_with):
    calls = []

    def second_compilation_fails(graph, example_inputs):  # the recompile for the short last batch
        calls.append(len(example_inputs))
        if len(calls) > 1:
            raise RuntimeError("no working C++ compiler")
        return graph.forward

    plain = _trainer(tmp_path / "plain", epochs=2, batch_size=24, normalization="none")
    compile_with(second_compilation_fails)
    compiled = _trainer(tmp_path / "compiled", epochs=2, batch_size=24, normalization="none", compile=True)
    with pytest.warns(RuntimeWarning, match="compiled training step failed.*no working C.. compiler"):
        b = compiled.fit()
    a = plain.fit()
    assert len(calls) == 2 and compiled.parallel is compiled.eager_parallel
    # the failed step was redone eagerly, so nothing was lost or applied twice
    assert [r["train_loss"] for r in b] == pytest.approx([r["train_loss"] for r in a], rel=1e-6)
    for (name, p), q in zip(plain.model.state_dict().items(), compiled.model.state_dict().values(),
                            strict=True):
        torch.testing.assert_close(q, p, rtol=1e-6, atol=1e-7, msg=name)


def test_an_error_of_the_model_itself_is_raised_not_hidden_by_the_fallback(tmp_path, compile_with):
    def failing(graph, example_inputs):
        raise RuntimeError("no working C++ compiler")

    compile_with(failing)
    trainer = _trainer(tmp_path, epochs=1, compile=True)
    trainer.eager_parallel.forward = lambda *args: torch.zeros(3)  # the wrong shape for the loss
    with pytest.raises(ValueError, match="differ in shape") as raised:
        trainer.fit()
    assert "no working C++ compiler" in str(raised.value.__context__)  # the compiled try, chained


class _FakeClock:
    """``time`` for the trainer module: each epoch takes ``epoch_seconds`` of fake time."""

    def __init__(self, epoch_seconds):
        self.now, self.epoch_seconds = 0.0, epoch_seconds

    def perf_counter(self):
        self.now += 1e-6
        return self.now


def test_max_time_stops_before_an_epoch_that_would_overrun(tmp_path, monkeypatch):
    import pdekit.train.trainer as trainer_module

    clock = _FakeClock(10.0)
    monkeypatch.setattr(trainer_module, "time", clock)
    trainer = _trainer(tmp_path, epochs=10, eval_every=4)
    train_epoch = trainer.train_epoch

    def slow_epoch(epoch):
        clock.now += clock.epoch_seconds
        return train_epoch(epoch)

    trainer.train_epoch = slow_epoch
    history = trainer.fit(max_time=35.0)  # 10 s epochs: a 4th would end at 40 s
    assert [r["epoch"] for r in history] == [1, 2, 3]
    assert trainer.stopped_early and trainer.epoch == 3
    assert "test_relative_l2" in history[-1] and "test_relative_l2" not in history[-2]
    saved = pdekit.load(tmp_path / "last.pt")
    assert saved.metadata["metrics"]["epoch"] == 3


def test_a_run_stopped_by_max_time_resumes_to_the_same_weights(tmp_path):
    straight = _trainer(tmp_path / "a", epochs=4, scheduler="step", step_size=2, gamma=0.5)
    straight.fit(max_time=3600.0)
    assert not straight.stopped_early
    first = _trainer(tmp_path / "b", epochs=4, scheduler="step", step_size=2, gamma=0.5)
    history = first.fit(max_time=1e-9)  # out of time after the first epoch
    assert len(history) == 1 and first.stopped_early and "test_relative_l2" in history[0]
    second = _trainer(tmp_path / "b", epochs=4, resume=True, scheduler="step", step_size=2, gamma=0.5)
    assert second.epoch == 1
    second.fit()
    assert not second.stopped_early
    for (name, a), b in zip(straight.model.state_dict().items(), second.model.state_dict().values(),
                            strict=True):
        assert torch.equal(a, b), name
    with pytest.raises(ValueError, match="`max_time` must be > 0"):
        second.fit(max_time=0)


class _NoisyInputs(Task):
    """The supervised task with Gaussian noise drawn on the batch's device added to the inputs
    (as PDE-Refiner draws its noise on the training device)."""

    def loss(self, model, batch, settings):
        x, y = batch
        return super().loss(model, (x + 0.1 * torch.randn(x.shape, device=x.device), y), settings)


def test_resume_continues_the_random_draws_made_on_the_training_device(tmp_path, device):
    def trainer(folder, epochs, resume=False):
        return Trainer(_model(), AntiderivativeData(64, 0), AntiderivativeData(32, 1), out=tmp_path / folder,
                       resume=resume, progress=False, device=device, task=_NoisyInputs(), epochs=epochs,
                       batch_size=16, lr=3e-3, normalization="field", amp=False)

    straight = trainer("a", 4)
    straight.fit()
    trainer("b", 2).fit()
    second = trainer("b", 4, resume=True)  # after a fresh seed, as in a new process
    second.fit()
    exact = device.type == "cpu"  # GPU kernels may round differently; other noise moves weights by >1e-3
    for (name, a), b in zip(straight.model.state_dict().items(), second.model.state_dict().values(),
                            strict=True):
        torch.testing.assert_close(b, a, rtol=0 if exact else 1e-4, atol=0 if exact else 1e-5, msg=name)


@pytest.mark.parametrize("n, batch_size, world, kept", [
    (33, 8, 1, 32),   # a last batch of one sits out
    (34, 8, 1, 34),   # two samples: batch norm can train on them
    (1, 8, 1, 1),     # no full batch precedes it: kept
    (36, 8, 2, 36),   # 4 left for 2 processes: 2 each
    (35, 8, 2, 32),   # 3 left for 2 processes: one would get a batch of one
    (37, 8, 2, 37),   # 5 left for 2 processes: 3 and 2
])
def test_a_lone_last_batch_is_left_out_for_batch_norm(n, batch_size, world, kept):
    from pdekit.train.trainer import _without_lone_last_batch

    order = torch.randperm(n)
    out = _without_lone_last_batch(order, batch_size, world)
    assert len(out) == kept and torch.equal(out, order[:kept])
