import json

import pytest

from pdekit.cli import main
from pdekit.data import RecipeError
from pdekit.train.recipe import load_train_recipe
from tests.data.recipes import DARCY, write_recipe

TRAIN = """
name = "tiny-deeponet"
dataset = "{dataset}"
data_dir = "{data_dir}"

[model]
name = "deeponet"
branch = [81, 32, 32]
trunk = [2, 32, 32]

[training]
epochs = 3
batch_size = 2
lr = 1e-3
"""


def _recipe(tmp_path, text=TRAIN, **fields):
    dataset = write_recipe(tmp_path, DARCY, "darcy.toml")
    body = text.format(dataset=dataset, data_dir=tmp_path / "data")
    for key, value in fields.items():
        body = body.replace(f"[{key}]", f"[{key}]\n{value}")
    path = tmp_path / "train.toml"
    path.write_text(body)
    return path


def test_unknown_keys_and_model_arguments_are_named(tmp_path):
    with pytest.raises(RecipeError, match="unknown key 'optimiser'"):
        load_train_recipe(_recipe(tmp_path, TRAIN + 'optimiser = "adam"\n'))
    with pytest.raises(RecipeError, match="takes no argument 'depth'"):
        load_train_recipe(_recipe(tmp_path, model="depth = 3"))
    with pytest.raises(RecipeError, match=r"\[training\]: unknown key 'epoch'"):
        load_train_recipe(_recipe(tmp_path, training="epoch = 3"))
    with pytest.raises(RecipeError, match="name must be one of"):
        load_train_recipe(_recipe(tmp_path, TRAIN.replace('name = "deeponet"', 'name = "fno9"')))
    with pytest.raises(RecipeError, match="does not exist"):
        load_train_recipe(tmp_path / "missing.toml")


def test_train_and_evaluate_from_the_command_line(tmp_path, capsys):
    recipe = _recipe(tmp_path)
    run = tmp_path / "run"
    assert main(["train", str(recipe), "--out", str(run), "--no-progress", "--workers", "1"]) == 0
    assert (run / "best.pt").is_file() and (run / "last.pt").is_file() and (run / "recipe.json").is_file()
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 3
    out = tmp_path / "eval.json"
    assert main(["evaluate", str(run), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert len(result["per_sample"]) == 2  # the tiny recipe's test split
    assert result["metrics"]["relative_l2"] == pytest.approx(sum(result["per_sample"]) / 2)
    assert {"relative_l2_std", "mse", "nrmse", "frequency_rmse_low"} <= set(result["metrics"])
    assert (tmp_path / "eval.png").stat().st_size > 0
    # resuming a finished run trains no further epoch; more epochs continue from the last
    assert main(["train", str(recipe), "--out", str(run), "--resume", "--epochs", "4", "--no-progress"]) == 0
    assert [json.loads(x)["epoch"] for x in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4]


def test_evaluate_says_when_best_pt_was_chosen_on_the_split_it_scores(tmp_path, capsys):
    recipe = _recipe(tmp_path)
    chosen_on_test, held_out = tmp_path / "a", tmp_path / "b"
    args = ["train", str(recipe), "--no-progress", "--workers", "1", "--epochs", "2"]
    assert main([*args, "--out", str(chosen_on_test)]) == 0
    assert main([*args, "--out", str(held_out), "--set", "training.validation_fraction=0.25"]) == 0
    capsys.readouterr()
    note = "best.pt is the epoch that scored best on this very split"
    out = tmp_path / "eval.json"
    assert main(["evaluate", str(chosen_on_test), "--json", str(out)]) == 0  # the folder: best.pt
    assert note in capsys.readouterr().err
    assert json.loads(out.read_text())["chosen_on_this_split"] is True
    for checkpoint in (chosen_on_test / "last.pt", held_out):  # the last epoch; chosen on validation
        assert main(["evaluate", str(checkpoint), "--json", str(out)]) == 0
        assert note not in capsys.readouterr().err
        assert "chosen_on_this_split" not in json.loads(out.read_text())
    assert main(["evaluate", str(chosen_on_test), "--split", "train"]) == 0  # another split
    assert note not in capsys.readouterr().err


@pytest.mark.parametrize("busy", [0.0, 64.0])
def test_train_on_the_cpu_warns_when_other_processes_hold_the_cores(busy, tmp_path, capsys, monkeypatch):
    import pdekit.bench.record

    monkeypatch.setattr(pdekit.bench.record, "busy_cores_elsewhere", lambda: busy)
    recipe = _recipe(tmp_path)
    assert main(["train", str(recipe), "--out", str(tmp_path / "run"), "--epochs", "1",
                 "--no-progress", "--workers", "1"]) == 0
    warned = "train: warning: other processes keep 64.0 of the" in capsys.readouterr().err
    assert warned == bool(busy)


def test_evaluate_against_another_result_is_a_paired_comparison(tmp_path, capsys):
    recipe = _recipe(tmp_path)
    runs = [tmp_path / "a", tmp_path / "b"]
    for seed, run in enumerate(runs):
        assert main(["train", str(recipe), "--out", str(run), "--no-progress", "--workers", "1",
                     "--set", f"training.seed={seed}"]) == 0
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    assert main(["evaluate", str(runs[0]), "--json", str(first)]) == 0
    assert main(["evaluate", str(runs[1]), "--json", str(second), "--against", str(first)]) == 0
    assert "lower on" in capsys.readouterr().out
    ours, theirs = (json.loads(path.read_text()) for path in (second, first))
    c = ours["against"]
    assert c["samples"] == 2 and c["path"] == str(first)
    means = [result["metrics"]["relative_l2"] for result in (ours, theirs)]
    assert c["mean_difference"] == pytest.approx(means[0] - means[1], rel=1e-5)  # float32 means
    # not the same samples: another split
    assert main(["evaluate", str(runs[1]), "--split", "train", "--against", str(first)]) == 2
    assert "not the same samples" in capsys.readouterr().err
    (tmp_path / "other.json").write_text("{}")
    assert main(["evaluate", str(runs[1]), "--against", str(tmp_path / "other.json")]) == 2
    assert "is not a `pdekit evaluate --json` result" in capsys.readouterr().err
    assert main(["evaluate", str(runs[1]), "--against", str(tmp_path / "missing.json")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_max_time_stops_the_command_line_run_and_resume_finishes_it(tmp_path, capsys):
    recipe = _recipe(tmp_path)  # 3 epochs
    run = tmp_path / "run"
    args = ["train", str(recipe), "--out", str(run), "--no-progress", "--workers", "1"]
    assert main([*args, "--max-time", "1e-9"]) == 0  # out of time after the first epoch
    message = "stopped by --max-time (1e-09 min) after epoch 1 of 3; continue with --resume"
    assert message in capsys.readouterr().out
    assert [json.loads(x)["epoch"] for x in (run / "metrics.jsonl").read_text().splitlines()] == [1]
    assert main([*args, "--resume", "--max-time", "60"]) == 0
    assert "stopped" not in capsys.readouterr().out
    assert [json.loads(x)["epoch"] for x in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]


def test_common_mistakes_get_one_clear_line(tmp_path, capsys):
    assert main(["train", str(tmp_path / "nope.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "nope.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "junk.pt").write_bytes(b"junk")
    assert main(["evaluate", str(tmp_path / "junk.pt")]) == 2
    assert "not a readable pdekit checkpoint" in capsys.readouterr().err


def test_settings_change_single_keys_before_validation(tmp_path):
    path = _recipe(tmp_path)
    base = load_train_recipe(path)
    recipe = load_train_recipe(path, ["training.lr=5e-4", "training.epochs = 7", 'name="other"',
                                      "description=plain text", "model.activation=gelu"])
    assert (recipe.training.lr, recipe.training.epochs, recipe.name) == (5e-4, 7, "other")
    assert recipe.description == "plain text"  # not TOML: kept as text
    assert recipe.arguments == {**base.arguments, "activation": "gelu"}
    assert load_train_recipe(path) == base  # the file is untouched
    with pytest.raises(RecipeError, match=r"with --set: \[training\]: unknown key 'epoch'"):
        load_train_recipe(path, ["training.epoch=3"])
    with pytest.raises(RecipeError, match="takes no argument 'depth'"):
        load_train_recipe(path, ["model.depth=3"])
    with pytest.raises(RecipeError, match="expected KEY=VALUE"):
        load_train_recipe(path, ["training.lr"])
    with pytest.raises(RecipeError, match="TABLE one of"):
        load_train_recipe(path, ["optim.lr=1"])
    with pytest.raises(RecipeError, match="set one key of the table"):
        load_train_recipe(path, ["model=3"])


def test_set_on_the_command_line_resume_checks_and_run_folders_as_recipes(tmp_path, capsys):
    recipe = _recipe(tmp_path)
    run = tmp_path / "run"
    args = ["train", str(recipe), "--out", str(run), "--no-progress", "--workers", "1"]
    assert main([*args, "--set", "training.epochs=1", "--set", "training.lr=2e-3"]) == 0
    saved = json.loads((run / "recipe.json").read_text())
    assert saved["training"]["epochs"] == 1 and saved["training"]["lr"] == 2e-3
    assert main([*args, "--resume", "--set", "model.activation=tanh"]) == 2
    assert "was trained with model activation = " in capsys.readouterr().err
    assert main([*args, "--set", "training.epoch=1"]) == 2
    assert "unknown key 'epoch'" in capsys.readouterr().err
    assert main([*args, "--resume", "--set", "training.epochs=2"]) == 2  # the file's lr is 1e-3
    assert "was trained with training lr = 0.002, the recipe asks for 0.001" in capsys.readouterr().err
    assert main([*args, "--resume", "--set", "training.epochs=2", "--set", "training.lr=2e-3"]) == 0
    assert [json.loads(x)["epoch"] for x in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    # a run folder is its own recipe (the settings it ran with) and its own --out
    assert load_train_recipe(run).training.lr == 2e-3
    assert main(["train", str(run), "--resume", "--epochs", "3", "--no-progress"]) == 0
    assert [json.loads(x)["epoch"] for x in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]
    assert json.loads((run / "recipe.json").read_text())["training"]["lr"] == 2e-3
    with pytest.raises(RecipeError, match="not a training run folder"):
        load_train_recipe(tmp_path / "data")
    # under a schedule over the epoch count, --epochs cannot change on resume
    cosine = tmp_path / "cosine"
    assert main([*args, "--out", str(cosine), "--set", "training.scheduler=cosine",
                 "--set", "training.epochs=1"]) == 0
    assert main(["train", str(cosine), "--resume", "--epochs", "2", "--no-progress"]) == 2
    assert "was trained with training epochs = 1, the recipe asks for 2" in capsys.readouterr().err


def test_repository_training_recipes_validate():
    from pathlib import Path

    recipes = sorted((Path(__file__).resolve().parents[2] / "solvers").glob("*.toml"))
    assert recipes
    for path in recipes:
        recipe = load_train_recipe(path)
        assert recipe.name == path.stem
