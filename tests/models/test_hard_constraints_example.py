"""examples/hard_constraints.py in its quick mode: it runs and scores three models."""

import importlib.util
from pathlib import Path


def test_hard_constraints_example_quick_mode():
    path = Path(__file__).resolve().parents[2] / "examples" / "hard_constraints.py"
    spec = importlib.util.spec_from_file_location("hard_constraints_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    errors = module.main(quick=True)
    assert set(errors) == {"soft constraint", "hard constraint", "hard MoE (4 experts)"}
    assert all(0.0 <= e < 10.0 for e in errors.values())
    # the hard constraints solve the physics at the start already: better than the soft model
    assert errors["hard constraint"] < errors["soft constraint"]
    assert errors["hard MoE (4 experts)"] < errors["soft constraint"]
