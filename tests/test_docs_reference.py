"""docs/recipes.md and docs/cli.md are what pdekit.docs_reference generates from the code."""

import dataclasses
from pathlib import Path

import pytest

from pdekit import docs_reference
from pdekit.docs_reference import PAGES, REGENERATE, docstring_entries, recipe_reference

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("relative", sorted(PAGES))
def test_reference_page_is_up_to_date(relative):
    expected = PAGES[relative]()
    actual = (ROOT / relative).read_text() if (ROOT / relative).exists() else ""
    assert actual == expected, f"{relative} differs from the code; regenerate it: `{REGENERATE}`"


def test_every_recipe_key_is_listed_with_a_meaning():
    from pdekit.data.problems import PROBLEMS
    from pdekit.data.recipe import SolverSettings
    from pdekit.train.trainer import TrainingSettings

    text = recipe_reference()
    for cls in (SolverSettings, TrainingSettings, *(p.Parameters for p in PROBLEMS.values())):
        docs = docstring_entries(cls)
        for f in dataclasses.fields(cls):
            assert f"| `{f.name}` |" in text
            assert docs[f.name][1], f"{cls.__name__}.{f.name} has no meaning"


def test_an_undocumented_key_stops_the_generator():
    @dataclasses.dataclass
    class Settings:
        """Settings.

        Attributes
        ----------
        rtol : float
            Tolerance.
        """

        rtol: float = 1e-6
        depth: int = 2

    assert docstring_entries(Settings) == {"rtol": ("float", "Tolerance.")}
    with pytest.raises(ValueError, match="depth has no meaning"):
        docs_reference._dataclass_rows(Settings)


def test_docstring_sections_with_shared_entries_and_inline_meanings():
    class Model:
        """A model.

        Parameters
        ----------
        in_channels, out_channels : int
            Input and output fields.
        hidden, widths : U-Net width and depth (`ModernUNet1d`).

        Shapes: ``(B, C) -> (B, C)``.
        """

    entries = docstring_entries(Model)
    assert entries["out_channels"] == ("int", "Input and output fields.")
    assert entries["widths"] == ("", "U-Net width and depth (`ModernUNet1d`).")
    assert set(entries) == {"in_channels", "out_channels", "hidden", "widths"}


def test_the_cli_page_lists_every_command_and_argument():
    from pdekit.cli import build_parser

    text = PAGES["docs/cli.md"]()
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, command in sub.choices.items():
        assert f"## pdekit {name}\n" in text
        for action in command._actions:
            for flag in action.option_strings:
                if flag not in ("-h", "--help"):
                    assert f"`{flag}" in text, (name, flag)
