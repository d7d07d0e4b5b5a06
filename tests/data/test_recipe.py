import pytest

from pdekit.data import RecipeError, load_recipe
from tests.data.recipes import POISSON, write_recipe


def test_repository_recipes_validate():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "datasets"
    names = {p.stem for p in root.glob("*.toml")}
    assert {"poisson2d", "poisson3d-obstacles", "darcy", "antiderivative"} <= names
    for path in root.glob("*.toml"):
        recipe = load_recipe(path)
        assert recipe.name == path.stem


def test_darcy_recipe_has_the_literature_setup():
    from pathlib import Path

    recipe = load_recipe(Path(__file__).resolve().parents[2] / "datasets" / "darcy.toml")
    p = recipe.parameters
    assert (p.size, p.fine_size, p.alpha, p.tau, tuple(p.values)) == (85, 421, 2.0, 3.0, (12.0, 3.0))
    assert recipe.splits == {"train": 1000, "test": 200}


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda t: t.replace('pde = "poisson"', 'pde = "heat"'), "unknown pde 'heat'"),
        (lambda t: t + "\ncolour = 1\n", "unknown key 'colour'; valid keys"),
        (lambda t: t.replace("[parameters]", "[parameters]\nwidth = 3"), "unknown key 'width'"),
        (lambda t: t.replace('name = "tiny-poisson"\n', ""), "missing required key 'name'"),
        (lambda t: t.replace("train = 7", "train = -2"), "splits.train must be a positive"),
        (lambda t: t.replace("shape = [12, 10]", "shape = [12, -10]"), "shape"),
        (lambda t: t.replace("rtol = 1e-10", 'rtol = "tight"'), "key 'rtol' must be of type float"),
        (lambda t: t.replace("rtol = 1e-10", "rtol = 2.0"), "rtol"),
        (lambda t: t.replace("samples_per_shard = 3", "samples_per_shard = 0"), "samples_per_shard"),
        (lambda t: t + '\ndtype = "int8"\n', "dtype"),
        (lambda t: t.replace("[solver]", "[solver]\nsmoother = 1"), "unknown key 'smoother'"),
        (lambda t: t.replace("[splits]", "[splits"), "invalid TOML"),
    ],
)
def test_bad_recipes_name_the_key(tmp_path, edit, message):
    path = write_recipe(tmp_path, edit(POISSON))
    with pytest.raises(RecipeError, match=message):
        load_recipe(path)


def test_overrides_and_fingerprint(tmp_path):
    recipe = load_recipe(write_recipe(tmp_path))
    small = recipe.replace(samples=2, seed=3)
    assert small.splits == {"train": 2, "test": 2} and small.seed == 3
    assert small.fingerprint() != recipe.fingerprint()
    assert recipe.replace().fingerprint() == recipe.fingerprint()
    with pytest.raises(RecipeError, match="samples"):
        recipe.replace(samples=0)
