"""A newcomer's common mistakes get one clear line naming what is wrong, exit status 2 and no
traceback: a missing recipe, a device this machine lacks, a dataset path that does not exist,
a checkpoint of another model."""

from pathlib import Path

import pytest
import torch

import pdekit
from pdekit.cli import main
from pdekit.data import generate, load_recipe
from pdekit.models import CheckpointError

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINTS = ROOT / "solvers" / "checkpoints"


def error_line(capsys, argv) -> str:
    """Run ``pdekit argv``; check the exit status 2 and return the one error line."""
    try:
        code = main(argv)
    except SystemExit as exit_info:  # argparse rejects the argument before any work
        code = exit_info.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"pdekit {argv[0]}: error: "), err
    if not err.startswith("usage:"):  # the handlers print exactly one line
        assert len(err.strip().splitlines()) == 1, err
    return line


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data") / "antiderivative-n4"
    generate(load_recipe(ROOT / "datasets" / "antiderivative.toml").replace(samples=4), folder,
             workers=1, progress=False)
    return folder


@pytest.mark.parametrize("command", [["generate", "--out", "unused"], ["train"]])
def test_a_missing_recipe_file(command, tmp_path, capsys):
    missing = str(tmp_path / "no-such-recipe.toml")
    line = error_line(capsys, [command[0], missing, *command[1:]])
    assert "no-such-recipe.toml" in line and "does not exist" in line


DEVICES = ["gpu", "cuda:7", "tpu"] + ([] if torch.cuda.is_available() else ["cuda"])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("command", [
    ["solve", "poisson2d", "--size", "8"],
    ["train", "solvers/deeponet-antiderivative.toml", "--epochs", "1"],
    ["evaluate", "solvers/checkpoints/deeponet-antiderivative.pt"],
    ["bench", "linalg", "--quick"],
], ids=lambda c: c[0])
def test_a_device_this_machine_lacks(command, device, capsys):
    if device == "cuda:7" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has 8 GPUs")
    line = error_line(capsys, [*command, "--device", device])
    assert "argument --device" in line and repr(device) in line


def test_a_dataset_path_that_does_not_exist(tmp_path, capsys):
    missing = str(tmp_path / "no-such-dataset")
    line = error_line(capsys, ["evaluate", str(CHECKPOINTS / "deeponet-antiderivative.pt"),
                               "--dataset", missing])
    assert "no-such-dataset" in line and "does not exist" in line
    for command in (["info", missing], ["plot", missing, "--out", str(tmp_path / "x.png")]):
        line = error_line(capsys, command)
        assert "no-such-dataset" in line


def test_a_checkpoint_of_another_model(tiny_dataset, capsys):
    line = error_line(capsys, ["evaluate", str(CHECKPOINTS / "dcdm-poisson2d.pt"),
                               "--dataset", str(tiny_dataset), "--split", "test"])
    assert "'dcdm-net'" in line and "another model" in line
    with pytest.raises(CheckpointError, match="holds a 'deeponet' model, expected 'dcdm-net'"):
        pdekit.load_preconditioner(CHECKPOINTS / "deeponet-antiderivative.pt")


def test_a_file_that_is_not_a_checkpoint(capsys):
    line = error_line(capsys, ["evaluate", str(ROOT / "datasets" / "darcy.toml")])
    assert "darcy.toml is not a readable pdekit checkpoint (not a file written by torch.save)" in line


def test_the_right_checkpoint_and_dataset_still_evaluate(tiny_dataset, capsys):
    assert main(["evaluate", str(CHECKPOINTS / "deeponet-antiderivative.pt"), "--dataset",
                 str(tiny_dataset)]) == 0
    assert "relative L2" in capsys.readouterr().out


@pytest.mark.parametrize("depth", ["-1", "two"])
def test_a_bad_dcdm_depth_is_refused_when_parsed(depth, capsys):
    line = error_line(capsys, ["bench", "dcdm", "--quick", "--depth", depth])
    assert "--depth" in line and repr(depth) in line


@pytest.mark.parametrize("scales", ["0,2", "1,two"])
def test_bad_dcdm_scales_are_refused_when_parsed(scales, capsys):
    line = error_line(capsys, ["bench", "dcdm", "--quick", "--scales", scales])
    assert "--scales" in line and repr(scales) in line


@pytest.mark.parametrize("minutes", ["0", "-5", "soon"])
def test_a_bad_training_time_limit_is_refused_when_parsed(minutes, capsys):
    line = error_line(capsys, ["train", "solvers/deeponet-antiderivative.toml", "--max-time", minutes])
    assert "--max-time" in line and repr(minutes) in line


@pytest.mark.parametrize("fraction", ["0.95", "-0.1", "half"])
def test_a_bad_dcdm_solid_fraction_is_refused_when_parsed(fraction, capsys):
    line = error_line(capsys, ["bench", "dcdm", "--quick", "--max-fraction", fraction])
    assert "--max-fraction" in line and repr(fraction) in line


def test_an_unknown_dcdm_method_is_refused_when_parsed(capsys):
    line = error_line(capsys, ["bench", "dcdm", "--quick", "--methods", "pdekit-cg,pdekit-gmres"])
    assert "--methods" in line and "'pdekit-gmres'" in line and "pdekit-dcdm" in line
