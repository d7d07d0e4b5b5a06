import pytest
import torch

from pdekit.bench import run_benchmark
from pdekit.bench.record import BenchmarkReport
from pdekit.bench.train import LSM_RECIPE, _model, _summarise, summary_table, trainer_variants
from pdekit.models.registry import model_arguments, model_name
from pdekit.train import TrainingSettings
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


def test_bench_train_measures_bf16_and_compile_on_cuda_only():
    assert list(trainer_variants(torch.device("cpu"))) == ["pdekit-trainer"]
    cuda = trainer_variants(torch.device("cuda"))
    assert cuda == {"pdekit-trainer": {"amp": False}, "pdekit-trainer-bf16": {"amp": True},
                    "pdekit-trainer-bf16-compile": {"amp": True, "compile": True}}
    # every variant is a valid Trainer configuration
    for options in cuda.values():
        TrainingSettings(**options)


def test_bench_train_summary_gives_speedups_and_the_paper_budget():
    report = BenchmarkReport("train", "test")
    for method, rate in [("bare-pytorch-loop", 100.0), ("pdekit-trainer", 90.0), ("pdekit-trainer", 95.0),
                         ("pdekit-trainer-bf16", 190.0), ("bare-pytorch-loop", 80.0)]:
        report.add("lsm-85", method, samples_per_second=rate)
    _summarise(report)
    by = {r["method"]: r for r in report.records}
    assert len(report.records) == 3  # the best of the repeated runs
    assert by["pdekit-trainer"]["overhead"] == pytest.approx(0.05)
    assert by["pdekit-trainer-bf16"]["speedup"] == pytest.approx(2.0)
    assert "speedup" not in by["bare-pytorch-loop"] and "overhead" not in by["pdekit-trainer-bf16"]
    # 501 epochs of 1000 samples at 190 samples per second
    assert by["pdekit-trainer-bf16"]["paper_budget_hours"] == pytest.approx(501_000 / 190 / 3600)
    assert "paper_budget_hours" in summary_table(report)
