"""Every code block of README.md and docs/*.md is checked, so none can rot.

- ```python blocks run, in order, one namespace per page (like a doctest session), from a
  temporary folder that links the repository's files (``datasets/``, ``solvers/``, ...) and
  receives whatever the blocks write (``data/``, ``runs/``). A block that names ``cuda`` is
  skipped when CUDA is absent. A page whose blocks are too heavy for the default suite carries
  ``<!-- docs-test: slow -->`` and runs with ``pytest -m slow``.
- ```bash blocks: every ``pdekit ...`` line parses with :func:`pdekit.cli.build_parser`
  (nothing runs), every ``make`` target exists, and every repository file a line names
  (``datasets/...``, ``solvers/...``, ``examples/...``) exists.
- ```toml blocks that are recipes validate as recipes.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest
import torch

from pdekit.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SLOW_MARK = "<!-- docs-test: slow -->"
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```\s*$", re.S | re.M)
REPO_DIRS = ("datasets/", "solvers/", "examples/", "docs/", "tests/", "pdekit/")


def code_blocks(page: Path, language: str) -> list[tuple[int, str]]:
    """``(line, code)`` of the page's fenced blocks in ``language``."""
    text = page.read_text()
    return [(text.count("\n", 0, m.start()) + 1, m.group(2))
            for m in FENCE.finditer(text) if m.group(1) == language]


def _page_param(page: Path):
    marks = [pytest.mark.slow] if SLOW_MARK in page.read_text() else []
    return pytest.param(page, id=page.relative_to(ROOT).as_posix(), marks=marks)


PYTHON_PAGES = [_page_param(p) for p in PAGES if code_blocks(p, "python")]
BASH_PAGES = [pytest.param(p, id=p.relative_to(ROOT).as_posix()) for p in PAGES if code_blocks(p, "bash")]


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """A working folder that sees the repository's files but keeps what blocks write."""
    for entry in ROOT.iterdir():
        if not entry.name.startswith(".") and entry.name not in ("data", "runs"):
            (tmp_path / entry.name).symlink_to(entry)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("page", PYTHON_PAGES)
def test_python_blocks_run(page, sandbox):
    import matplotlib

    matplotlib.use("Agg")
    namespace: dict = {"__name__": "__docs__"}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small blocks run fastest on one thread of a shared machine
    ran = 0
    try:
        for line, code in code_blocks(page, "python"):
            if "cuda" in code and not torch.cuda.is_available():
                continue
            where = f"{page.relative_to(ROOT)}:{line}"
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    exec(compile(code, where, "exec"), namespace)
            except Exception as err:
                raise AssertionError(f"the python block at {where} fails: {type(err).__name__}: {err}") \
                    from err
            ran += 1
    finally:
        torch.set_num_threads(threads)
    if ran == 0:
        pytest.skip("every block needs CUDA")


def _commands(code: str) -> list[list[str]]:
    """Shell lines of a block as argument lists (comments dropped, continuations joined)."""
    code = code.replace("\\\n", " ")
    lines = []
    for raw in code.splitlines():
        raw = raw.strip().removeprefix("$ ")
        if raw and not raw.startswith("#"):
            for part in re.split(r"\s*(?:&&|;|\|)\s*", raw):
                words = shlex.split(part, comments=True)
                if words:
                    lines.append(words)
    return lines


@pytest.mark.parametrize("page", BASH_PAGES)
def test_bash_blocks_are_real_commands(page):
    parser = build_parser()
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))
    for line, code in code_blocks(page, "bash"):
        where = f"{page.relative_to(ROOT)}:{line}"
        for words in _commands(code):
            words = [w for w in words if "=" not in w or w.startswith("-")] if words[0] == "make" else words
            arguments = None
            if words[0].endswith("pdekit"):
                arguments = words[1:]
            elif "pdekit.cli" in words and words[words.index("pdekit.cli") - 1] == "-m":
                arguments = words[words.index("pdekit.cli") + 1:]  # python -m / torchrun -m
            if arguments is not None:
                try:
                    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                        parser.parse_args(arguments)
                except SystemExit as err:
                    assert err.code == 0, f"{where}: `{shlex.join(words)}` does not parse"
            elif words[0] == "make":
                missing = [w for w in words[1:] if not w.startswith("-") and w not in targets]
                assert not missing, f"{where}: `{shlex.join(words)}`: no Makefile target {missing}"
            for word in words[1:]:
                value = word.split("=", 1)[-1]
                if value.startswith(REPO_DIRS) and "*" not in value:
                    assert (ROOT / value).exists(), f"{where}: `{shlex.join(words)}`: {value} is missing"


def test_toml_recipe_blocks_validate():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    from pdekit.data.recipe import recipe_from_dict

    for page in PAGES:
        for line, code in code_blocks(page, "toml"):
            data = tomllib.loads(code)
            if {"name", "pde", "splits"} <= set(data):
                recipe_from_dict(data, where=f"{page.relative_to(ROOT)}:{line}")


def test_the_quickstart_shows_the_three_uses():
    """The issue's quickstart: the two commands, then generating datasets, training a neural
    operator from a script, and the learned preconditioner inside CG, in Python."""
    text = (ROOT / "docs" / "quickstart.md").read_text()
    code = "\n".join(c for _, c in code_blocks(ROOT / "docs" / "quickstart.md", "python"))
    assert "make demo" in text and "make test" in text
    assert "pdekit.data" in code and "generate(" in code
    assert "Trainer(" in code and ".fit()" in code
    assert "load_preconditioner(" in code and "cg(" in code
