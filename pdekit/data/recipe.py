"""Dataset recipes: TOML files validated into dataclasses.

A recipe names the PDE, its parameters, the solver settings, the splits and their sizes,
the seed and the shard size::

    name = "darcy"
    pde = "darcy"
    seed = 0
    samples_per_shard = 100
    dtype = "float32"            # storage dtype of the fields

    [splits]
    train = 1000
    test = 200

    [parameters]                 # validated by the PDE's own parameter dataclass
    size = 85
    fine_size = 421

    [solver]
    rtol = 1e-10
    method = "multigrid"

An unknown key anywhere is an error naming the key and the valid ones; so is a missing
required key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

__all__ = ["Recipe", "RecipeError", "SolverSettings", "load_recipe", "read_toml", "validate_dataclass"]


class RecipeError(ValueError):
    """A recipe is invalid; the message names the key and what was expected."""


def validate_dataclass(cls, values: dict, where: str):
    """Build dataclass ``cls`` from ``values``, refusing unknown or missing keys and values of
    the wrong type (ints are accepted for floats; lists for tuples)."""
    if not isinstance(values, dict):
        raise RecipeError(f"{where}: expected a table, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise RecipeError(
            f"{where}: unknown key {unknown[0]!r}; valid keys are {sorted(fields)}"
        )
    missing = [
        name for name, f in fields.items()
        if name not in values and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise RecipeError(f"{where}: missing required key {missing[0]!r}")
    converted = {}
    for name, value in values.items():
        expected = fields[name].type
        expected = expected if isinstance(expected, str) else getattr(expected, "__name__", "")
        if expected.startswith("float") and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if expected.startswith("tuple") and isinstance(value, list):
            value = tuple(value)
        base = expected.split("[")[0].split(" ")[0]
        checks = {"int": int, "float": float, "str": str, "bool": bool, "tuple": tuple}
        if (base in checks and not isinstance(value, checks[base])) or (
            base == "int" and isinstance(value, bool)
        ):
            raise RecipeError(
                f"{where}: key {name!r} must be of type {expected}, got {value!r}"
            )
        converted[name] = value
    try:
        return cls(**converted)
    except (TypeError, ValueError) as err:
        raise RecipeError(f"{where}: {err}") from None


@dataclass(frozen=True)
class SolverSettings:
    """Settings of the reference solves.

    Attributes
    ----------
    rtol : float
        Relative residual tolerance of each reference solve, in (0, 1).
    method : str
        CG preconditioner: ``"multigrid"``, ``"ichol0"`` or ``"cg"`` (none).
    """

    rtol: float = 1e-10
    method: str = "multigrid"

    def __post_init__(self):
        if not 0 < self.rtol < 1:
            raise ValueError(f"`rtol` must lie in (0, 1), got {self.rtol}")
        if self.method not in ("multigrid", "ichol0", "cg"):
            raise ValueError(
                f"`method` must be one of 'multigrid', 'ichol0', 'cg', got {self.method!r}"
            )


@dataclass(frozen=True)
class Recipe:
    """A validated dataset recipe (see the module docstring).

    Attributes
    ----------
    name : str
        Dataset name (letters, digits, ``_``, ``.``, ``-``).
    pde : str
        A registered problem (``pdekit.data.problems.PROBLEMS``).
    splits : table of int
        Split names and sample counts, e.g. ``{train = 1000, test = 200}``.
    parameters : table
        The PDE's parameter dataclass; missing keys take their defaults.
    seed : int
        Every sample's generator derives from ``(seed, split, index)``.
    samples_per_shard : int
        Samples per HDF5 shard file.
    dtype : str
        Stored floating dtype, ``"float32"`` or ``"float64"`` (solves run in float64).
    description : str
        Free text, kept in the manifest.
    solver : table
        The ``[solver]`` settings of the reference solves.
    """

    name: str
    pde: str
    splits: dict[str, int]
    parameters: Any
    seed: int = 0
    samples_per_shard: int = 100
    dtype: str = "float32"
    description: str = ""
    solver: SolverSettings = field(default_factory=SolverSettings)

    def to_dict(self) -> dict:
        """A plain dictionary (JSON-serialisable) of the resolved recipe."""
        return {
            "name": self.name, "pde": self.pde, "description": self.description,
            "seed": self.seed, "samples_per_shard": self.samples_per_shard, "dtype": self.dtype,
            "splits": dict(self.splits),
            "parameters": dataclasses.asdict(self.parameters),
            "solver": dataclasses.asdict(self.solver),
        }

    def fingerprint(self) -> str:
        """sha256 of the resolved recipe: two datasets agree iff their fingerprints do."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def replace(self, *, seed: int | None = None, samples: int | None = None) -> Recipe:
        """The recipe with another seed and/or every split capped at ``samples``."""
        splits = self.splits
        if samples is not None:
            if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
                raise RecipeError(f"`samples` must be a positive integer, got {samples!r}")
            splits = {k: min(v, samples) for k, v in splits.items()}
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise RecipeError(f"`seed` must be a non-negative integer, got {seed!r}")
        return dataclasses.replace(self, splits=splits, seed=self.seed if seed is None else seed)


_TOP_KEYS = {"name", "pde", "seed", "samples_per_shard", "dtype", "description", "splits",
             "parameters", "solver"}
_REQUIRED = ("name", "pde", "splits")


def recipe_from_dict(data: dict, where: str = "recipe") -> Recipe:
    """Validate a recipe given as a dictionary (as read from TOML or a manifest)."""
    from pdekit.data.problems import PROBLEMS

    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise RecipeError(f"{where}: unknown key {unknown[0]!r}; valid keys are {sorted(_TOP_KEYS)}")
    for key in _REQUIRED:
        if key not in data:
            raise RecipeError(f"{where}: missing required key {key!r}")
    name, pde = data["name"], data["pde"]
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise RecipeError(f"{where}: `name` must be letters, digits, '_', '.', '-', got {name!r}")
    if pde not in PROBLEMS:
        raise RecipeError(f"{where}: unknown pde {pde!r}; available: {sorted(PROBLEMS)}")
    splits = data["splits"]
    if not isinstance(splits, dict) or not splits:
        raise RecipeError(f"{where}: `splits` must be a non-empty table like {{train = 1000}}")
    for split, count in splits.items():
        if not re.fullmatch(r"[a-z][a-z0-9_]*", split):
            raise RecipeError(f"{where}: split name {split!r} must be lower-case letters/digits")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise RecipeError(f"{where}: splits.{split} must be a positive integer, got {count!r}")
    problem = PROBLEMS[pde]
    parameters = validate_dataclass(problem.Parameters, data.get("parameters", {}),
                                    f"{where}: [parameters] of pde {pde!r}")
    solver = validate_dataclass(SolverSettings, data.get("solver", {}), f"{where}: [solver]")
    seed = data.get("seed", 0)
    per_shard = data.get("samples_per_shard", 100)
    dtype = data.get("dtype", "float32")
    for key, value in (("seed", seed), ("samples_per_shard", per_shard)):
        if isinstance(value, bool) or not isinstance(value, int) or value < (0 if key == "seed" else 1):
            kind = "non-negative" if key == "seed" else "positive"
            raise RecipeError(f"{where}: `{key}` must be a {kind} integer, got {value!r}")
    if dtype not in ("float32", "float64"):
        raise RecipeError(f"{where}: `dtype` must be 'float32' or 'float64', got {dtype!r}")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise RecipeError(f"{where}: `description` must be a string")
    return Recipe(name=name, pde=pde, splits=dict(splits), parameters=parameters, seed=seed,
                  samples_per_shard=per_shard, dtype=dtype, description=description,
                  solver=solver)


def toml_value(text: str):
    """``text`` read as one TOML value (``32``, ``5e-4``, ``true``, ``[1, 2]``, ``"a b"``), or
    ``text`` itself when it is not one (so ``gelu`` needs no quotes on a command line)."""
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def read_toml(path: str | os.PathLike, what: str = "recipe") -> dict:
    """The table of a TOML file; a missing file or invalid TOML is a :class:`RecipeError`."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"{what} {str(path)!r} does not exist")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise RecipeError(f"{what} {path.name}: invalid TOML: {err}") from None


def load_recipe(path: str | os.PathLike) -> Recipe:
    """Read and validate a TOML recipe."""
    data = read_toml(path)
    return recipe_from_dict(data, where=f"recipe {Path(path).name}")
