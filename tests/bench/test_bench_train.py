import pytest

from pdekit.bench import run_benchmark
from pdekit.bench.train import LSM_RECIPE, _model
from pdekit.models.registry import model_arguments, model_name
from pdekit.train.recipe import load_train_recipe


def test_bench_train_quick_lsm_records_both_loops_and_the_overhead(tmp_path):
    report = run_benchmark("train", problems=["lsm"], quick=True, json_path=tmp_path / "train.json",
                           echo=lambda *_: None)
    by = {r["method"]: r for r in report.records}
    assert set(by) == {"bare-pytorch-loop", "pdekit-trainer"}  # the best of two runs each
    for r in by.values():
        assert r["problem"] == "lsm-29" and r["samples_per_second"] > 0 and r["batch_size"] == 16
        assert r["peak_memory_mib"] is None  # measured on CUDA only
    assert by["pdekit-trainer"]["overhead"] == pytest.approx(
        1 - by["pdekit-trainer"]["samples_per_second"] / by["bare-pytorch-loop"]["samples_per_second"])
    assert (tmp_path / "train.png").is_file()


def test_bench_train_lsm_is_the_recipes_model():
    model = _model("lsm", 85)
    assert model_name(model) == "lsm"
    assert model_arguments(model) == load_train_recipe(LSM_RECIPE).arguments
    assert model_arguments(model)["width"] == 64  # the paper's configuration


def test_bench_train_names_an_unknown_problem():
    with pytest.raises(ValueError, match=r"unknown problem 'fno'.*lsm"):
        run_benchmark("train", problems=["fno"], json_path=None, echo=lambda *_: None)
