"""Layer 2: datasets. Recipes (TOML) -> generation (local processes or a Dask cluster) ->
sharded HDF5 files readable by h5py and xarray -> lazy ``torch.utils.data.Dataset``s."""

from pdekit.data.dataset import HDF5SampleDataset, SampleSubset, open_dataset
from pdekit.data.formats import export_dataset
from pdekit.data.generate import DatasetExistsError, GenerateArgumentError, generate
from pdekit.data.problems import PROBLEMS
from pdekit.data.recipe import Recipe, RecipeError, load_recipe
from pdekit.data.ritz import RitzVectorProblem
from pdekit.data.shards import read_manifest, verify_dataset

PROBLEMS[RitzVectorProblem.name] = RitzVectorProblem()  # problems built on pdekit.data's own modules

__all__ = [
    "PROBLEMS",
    "DatasetExistsError",
    "GenerateArgumentError",
    "HDF5SampleDataset",
    "Recipe",
    "RecipeError",
    "SampleSubset",
    "export_dataset",
    "generate",
    "load_recipe",
    "open_dataset",
    "read_manifest",
    "verify_dataset",
]
