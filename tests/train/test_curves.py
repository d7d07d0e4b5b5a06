import json

import pytest

from pdekit.cli import main
from pdekit.train.curves import is_run_folder, plot_learning_curves, read_metrics, selected_metric


def _run(folder, losses, tested, task=None):
    folder.mkdir()
    lines = []
    for epoch, loss in enumerate(losses, start=1):
        record = {"epoch": epoch, "train_loss": loss, "lr": 1e-3}
        record.update(tested.get(epoch, {}))
        lines.append(json.dumps(record))
    (folder / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    if task is not None:
        (folder / "recipe.json").write_text(json.dumps({"task": task}))
    return folder


def test_selected_metric_follows_the_task_and_falls_back_to_the_first_test_key(tmp_path):
    a = _run(tmp_path / "a", [0.5, 0.3], {2: {"test_relative_l2": 0.2, "test_relative_l2_std": 0.1}},
             task={"name": "supervised"})
    b = _run(tmp_path / "b", [0.5, 0.3], {1: {"test_relative_l2_std": 0.1, "test_residual": 0.4}})
    assert is_run_folder(a) and not is_run_folder(tmp_path)
    assert [r["epoch"] for r in read_metrics(a)] == [1, 2]
    assert selected_metric(a) == ("test_relative_l2", False)
    assert selected_metric(b) == ("test_residual", False)  # no recipe.json: first test_ key, not _std
    with pytest.raises(FileNotFoundError, match="not a training run folder"):
        read_metrics(tmp_path)


def test_learning_curves_of_several_runs_from_the_command_line(tmp_path, capsys):
    tested = {2: {"test_relative_l2": 0.3}, 4: {"test_relative_l2": 0.1}}
    a = _run(tmp_path / "a", [1.0, 0.5, 0.3, 0.2], tested, task={"name": "supervised"})
    b = _run(tmp_path / "b", [1.0, 0.6, -0.1, 0.2], {})  # a negative loss: linear axis, nothing tested
    out = plot_learning_curves([a, b], tmp_path / "curves.png", labels=["A", "B"])
    assert out.stat().st_size > 0
    with pytest.raises(ValueError, match="2 labels for 1 runs"):
        plot_learning_curves([a], tmp_path / "x.png", labels=["A", "B"])
    target = tmp_path / "both.png"
    assert main(["plot", str(a), str(b), "--out", str(target)]) == 0
    assert target.stat().st_size > 0 and "wrote" in capsys.readouterr().out
    assert main(["plot", str(a), str(tmp_path)]) == 2  # a run and something else
    assert "is not a training run folder" in capsys.readouterr().err
