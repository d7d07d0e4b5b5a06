"""The layering contract: a package imports only from packages with a lower number."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "pdekit"

LAYERS = {
    "pdekit._version": -1,
    "pdekit.linalg": 0,
    "pdekit.classical": 1,
    "pdekit.data": 2,
    "pdekit.models": 2,
    "pdekit.train": 3,
    "pdekit.bench": 4,
    "pdekit.cli": 5,
    "pdekit.docs_reference": 6,  # pages generated from every layer, the command line included
    "pdekit.__main__": 6,  # `python -m pdekit`: the command line
}
FORBIDDEN_LOW = {"torch_geometric", "h5py", "xarray", "h5netcdf", "matplotlib", "tqdm", "argparse"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> int | None:
    best = None
    for prefix, layer in LAYERS.items():
        if module == prefix or module.startswith(prefix + "."):
            if best is None or len(prefix) > len(best[0]):
                best = (prefix, layer)
    return None if best is None else best[1]


def _package(module: str) -> str:
    for prefix in LAYERS:
        if module == prefix or module.startswith(prefix + "."):
            return prefix
    return module


def _imports(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, node.lineno))
    return found


def _modules():
    return sorted(p for p in ROOT.rglob("*.py") if _module_name(p) != "pdekit")


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT.parent)))
def test_module_imports_only_lower_layers(path):
    me = _module_name(path)
    my_layer = _layer(me)
    assert my_layer is not None, f"{me} belongs to no layer; add its package to LAYERS and docs/repomap.md"
    for imported, line in _imports(path):
        if imported.split(".")[0] != "pdekit":
            if my_layer <= 1:
                assert imported.split(".")[0] not in FORBIDDEN_LOW, (
                    f"{me}:{line} imports {imported}; layers 0 and 1 know nothing of files, "
                    "models or the command line"
                )
            continue
        if imported == "pdekit":
            pytest.fail(f"{me}:{line} imports the top-level package; import the layer it needs")
        if _package(imported) == _package(me):
            continue
        theirs = _layer(imported)
        assert theirs is not None and theirs < my_layer, (
            f"{me} (layer {my_layer}) imports {imported} (layer {theirs}) at line {line}"
        )


def test_the_checker_catches_an_upward_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from pdekit.train import Trainer\nimport pdekit.cli\n")
    imported = [name for name, _ in _imports(bad)]
    assert imported == ["pdekit.train", "pdekit.cli"]
    assert all(_layer(name) > _layer("pdekit.linalg.cg") for name in imported)
