"""Tiny recipes for the pipeline tests."""

from pathlib import Path

POISSON = """
name = "tiny-poisson"
pde = "poisson"
seed = 7
samples_per_shard = 3
[splits]
train = 7
test = 4
[parameters]
shape = [12, 10]
bc = [["dirichlet", "neumann"], "neumann"]
obstacle_fraction = 0.1
obstacle_radius = [0.1, 0.2]
[solver]
rtol = 1e-10
"""

DARCY = """
name = "tiny-darcy"
pde = "darcy"
samples_per_shard = 2
[splits]
train = 4
test = 2
[parameters]
size = 9
fine_size = 33
"""


def write_recipe(directory: Path, text: str = POISSON, name: str = "recipe.toml") -> Path:
    path = Path(directory) / name
    path.write_text(text)
    return path
