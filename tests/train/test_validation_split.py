"""A validation split held out of the training samples: drawn from the seed, never trained on,
evaluated beside the test set, and the one that chooses best.pt."""

import json

import pytest
import torch

import pdekit
from pdekit.data import SampleSubset, generate, open_dataset
from pdekit.models import DeepONet
from pdekit.train import Trainer, TrainingSettings
from pdekit.train.trainer import split_for_validation
from tests.data.recipes import write_recipe
from tests.train.tiny import AntiderivativeData


def _trainer(tmp_path, **settings):
    torch.manual_seed(0)
    model = DeepONet([16, 32, 32], [1, 32, 32])
    options = dict(epochs=8, batch_size=8, lr=3e-3, normalization="field", validation_fraction=0.25)
    options.update(settings)
    resume = options.pop("resume", False)
    return Trainer(model, AntiderivativeData(40, 0), AntiderivativeData(16, 1), out=tmp_path, progress=False,
                   resume=resume, **options)


def test_the_held_out_samples_are_drawn_from_the_seed_and_never_trained_on():
    data = AntiderivativeData(40, 0)
    kept, held = split_for_validation(data, 0.25, seed=3)
    assert len(held) == 10 and len(kept) == 30
    assert set(kept.indices).isdisjoint(held.indices)
    assert set(kept.indices) | set(held.indices) == set(range(40))
    assert held.indices == split_for_validation(data, 0.25, seed=3)[1].indices
    assert held.indices != split_for_validation(data, 0.25, seed=4)[1].indices
    assert held.field_info == data.field_info  # the subset still describes its fields
    torch.testing.assert_close(held[0]["u"], data[held.indices[0]]["u"])

    trainer = _trainer(None, seed=3)
    assert len(trainer.train_batches) == 30 and len(trainer.validation_batches) == 10
    trained = {tuple(row.tolist()) for row in trainer.train_batches.x.reshape(30, -1)}
    assert all(tuple(data[i]["u"].tolist()) not in trained for i in held.indices)


def test_best_checkpoint_is_chosen_on_the_validation_metric(tmp_path):
    trainer = _trainer(tmp_path, epochs=5)
    assert trainer.select == "val_relative_l2"
    # scripted metrics: validation is lowest at epoch 2, test at epoch 4
    series = {10: [0.9, 0.5, 0.7, 0.8, 0.6], 16: [0.9, 0.8, 0.7, 0.4, 0.6]}  # by split size
    trainer.task.evaluate = lambda model, batches, **_: {"test_relative_l2": series[len(batches)].pop(0)}
    trainer.fit()
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["val_relative_l2"] for r in records] == [0.9, 0.5, 0.7, 0.8, 0.6]
    assert [r["test_relative_l2"] for r in records] == [0.9, 0.8, 0.7, 0.4, 0.6]
    best = pdekit.load(tmp_path / "best.pt")
    assert best.metadata["metrics"]["epoch"] == 2 and trainer.best == 0.5


def test_validation_metrics_are_the_tasks_on_the_held_out_samples(tmp_path):
    trainer = _trainer(tmp_path, epochs=2)
    records = trainer.fit()
    assert all({"val_relative_l2", "val_mse", "test_relative_l2", "test_mse"} <= set(r) for r in records)
    assert records[-1]["val_relative_l2"] == pytest.approx(
        trainer.evaluate(trainer.validation_batches)["test_relative_l2"])


def test_without_a_validation_split_the_test_metric_chooses(tmp_path):
    trainer = _trainer(tmp_path, validation_fraction=0.0, epochs=2)
    assert trainer.select == "test_relative_l2" and trainer.validation_batches is None
    records = trainer.fit()
    assert not any(k.startswith("val_") for r in records for k in r)


def test_resume_keeps_the_same_split_and_weights(tmp_path):
    straight = _trainer(tmp_path / "a", epochs=4)
    straight.fit()
    _trainer(tmp_path / "b", epochs=2).fit()
    resumed = _trainer(tmp_path / "b", epochs=4, resume=True)
    resumed.fit()
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert resumed.best == straight.best


@pytest.mark.parametrize(("fraction", "count", "message"), [
    (1.0, 40, r"`validation_fraction` must be in \[0, 1\)"),
    (-0.1, 40, r"`validation_fraction` must be in \[0, 1\)"),
    (0.1, 4, "holds out 0 of the 4 training samples"),
    (0.9, 2, "holds out 2 of the 2 training samples"),
])
def test_a_split_with_an_empty_part_is_refused(fraction, count, message):
    with pytest.raises(ValueError, match=message):
        if count == 40:
            TrainingSettings(validation_fraction=fraction)
        else:
            Trainer(DeepONet([16, 8], [1, 8]), AntiderivativeData(count, 0), validation_fraction=fraction,
                    progress=False)


def test_subset_statistics_match_the_datasets_own(tmp_path):
    out = tmp_path / "poisson"
    generate(write_recipe(tmp_path), out, progress=False)
    data = open_dataset(out, "train")
    whole = SampleSubset(data, range(len(data))).per_point_statistics()
    for name, (mean, std) in data.per_point_statistics().items():
        torch.testing.assert_close(whole[name][0], mean)
        torch.testing.assert_close(whole[name][1], std)
    part = SampleSubset(data, [1, 4])
    u = torch.stack([data[1]["u"], data[4]["u"]]).double()
    torch.testing.assert_close(part.per_point_statistics(["u"])["u"][0], u.mean(0))
    assert "mask" not in {data.field_info[n].get("role") for n in part.per_point_statistics()}
    with pytest.raises(IndexError, match="out of range"):
        SampleSubset(data, [len(data)])


@pytest.mark.parametrize("preload", [True, False])
def test_normalisation_statistics_come_from_the_kept_samples_only(preload):
    trainer = _trainer(None, preload=preload, normalization="pointwise")
    data, kept = AntiderivativeData(40, 0), trainer.train_batches
    indices = split_for_validation(data, 0.25, seed=0)[0].indices
    u = torch.stack([data[i]["u"] for i in indices]).double()
    torch.testing.assert_close(trainer.model.input_mean.squeeze(), u.mean(0).float())
    assert len(kept) == 30
