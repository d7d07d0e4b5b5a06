import subprocess
import sys

import pytest

from pdekit.models import MODELS, build_model


def _fresh(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                          text=True, timeout=300).stdout.strip()


def test_torch_geometric_is_imported_only_when_a_graph_model_is_used():
    out = _fresh(
        "import sys, pdekit, pdekit.models, pdekit.cli\n"
        "print('torch_geometric' in sys.modules)\n"
        "from pdekit.models import MODELS\n"
        "print('mmpde' in MODELS, 'torch_geometric' in sys.modules)\n"
    )
    assert out.splitlines() == ["False", "True True"]


@pytest.mark.parametrize("lookup", [
    "'gnn-uniform' in MODELS",
    "MODELS['mmpde'].__name__ == 'MMPDE'",
    "'mmpde' in sorted(MODELS)",
    "'mmpde' in dict(MODELS.items())",
    "pdekit.models.UniformGNN.model_name == 'gnn-uniform'",
    "pdekit.models.build_model('mmpde', size=8, hidden=8, layers=1).model_name == 'mmpde'",
    "type(pdekit.load('solvers/checkpoints/mmpde-burgers2d.pt')).__name__ == 'MMPDE'",
])
def test_every_way_of_looking_up_finds_the_lazy_models(lookup):
    code = f"import pdekit, pdekit.models\nfrom pdekit.models import MODELS\nprint({lookup})"
    assert _fresh(code) == "True"


def test_an_unknown_name_still_fails_clearly():
    assert "no-such-model" not in MODELS and MODELS.get("no-such-model") is None
    with pytest.raises(KeyError):
        MODELS["no-such-model"]
    with pytest.raises(ValueError, match=r"unknown model 'no-such-model'.*mmpde"):
        build_model("no-such-model")
