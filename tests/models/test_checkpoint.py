import pytest
import torch

import pdekit
from pdekit.models import CheckpointError, DeepONet, MultiONet, NormalizedModel, save_checkpoint


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path):
    torch.manual_seed(0)
    model = DeepONet([2 * 36, 16, 16], [2, 16, 16], outputs=2, activation="tanh")
    path = save_checkpoint(tmp_path / "m.pt", model, {"note": "test"})
    loaded = pdekit.load(path)
    assert isinstance(loaded, DeepONet) and not loaded.training
    assert loaded.metadata == {"note": "test"}
    x = torch.randn(3, 2, 6, 6)
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def test_normalised_model_round_trip_and_normalisation(tmp_path):
    torch.manual_seed(1)
    inner = MultiONet(16, 2, [8, 8])
    stats = {"input_mean": torch.rand(1, 4, 4), "input_std": torch.rand(1, 4, 4) + 0.5,
             "output_mean": torch.rand(1, 4, 4), "output_std": torch.rand(1, 4, 4) + 0.5}
    model = NormalizedModel(inner, **stats)
    with torch.no_grad():
        inner.layer_weights.fill_(1.0)
    x = torch.randn(2, 1, 4, 4)
    normalised = (x - stats["input_mean"]) / stats["input_std"]
    expected = inner(normalised) * stats["output_std"] + stats["output_mean"]
    torch.testing.assert_close(model(x), expected)
    loaded = pdekit.load(save_checkpoint(tmp_path / "n.pt", model), expected="multionet")
    assert isinstance(loaded, NormalizedModel)
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def test_wrong_model_and_non_checkpoints_are_refused(tmp_path):
    path = save_checkpoint(tmp_path / "d.pt", DeepONet())
    with pytest.raises(CheckpointError, match="holds a 'deeponet' model, expected 'multionet'"):
        pdekit.load(path, expected="multionet")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a pdekit checkpoint"):
        pdekit.load(tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable"):
        pdekit.load(tmp_path / "junk.pt")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        pdekit.load(tmp_path / "missing.pt")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_per_point_statistics_follow_the_input_grid(dtype):
    # nodes spanning the same domain: 9 -> 5 per side keeps every second node exactly
    torch.manual_seed(2)
    identity = torch.nn.Identity()
    for grid, coarse in (((9,), (slice(None, None, 2),)),
                         ((9, 9), (slice(None, None, 2),) * 2),
                         ((5, 9, 9), (slice(None),) + (slice(None, None, 2),) * 2)):
        stats = {"input_mean": torch.rand(2, *grid), "input_std": torch.rand(2, *grid) + 0.5,
                 "output_mean": torch.rand(2, *grid), "output_std": torch.rand(2, *grid) + 0.5}
        model = NormalizedModel(identity, **stats).to(dtype)
        small = tuple(len(range(n)[s]) for n, s in zip(grid, coarse, strict=True))
        x = torch.randn(3, 2, *small, dtype=dtype)
        sub = {k: v.to(dtype)[(slice(None), *coarse)] for k, v in stats.items()}
        expected = (x - sub["input_mean"]) / sub["input_std"] * sub["output_std"] + sub["output_mean"]
        torch.testing.assert_close(model(x), expected)
    # per-field statistics broadcast at any grid
    model = NormalizedModel(identity, torch.zeros(1, 1, 1), torch.full((1, 1, 1), 2.0),
                            torch.ones(1, 1, 1), torch.ones(1, 1, 1))
    torch.testing.assert_close(model(torch.full((1, 1, 7, 3), 4.0)), torch.full((1, 1, 7, 3), 3.0))
