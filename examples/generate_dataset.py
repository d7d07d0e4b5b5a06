"""Generate a small Darcy dataset from its recipe, check it, and read it three ways.

The recipe datasets/darcy.toml (the FNO benchmark: 85 x 85 coefficients thresholded from a
Gaussian random field, solved on 421 x 421 by multigrid-preconditioned CG) is capped at a few
samples per split; the same call with no cap writes the full 1000 + 200 samples, as does
``pdekit generate datasets/darcy.toml --out data/darcy``.

    python examples/generate_dataset.py            # 16 samples per split, under a minute on a CPU
    python examples/generate_dataset.py --quick    # 2 samples per split, seconds

Run from the repository root; the dataset goes to data/darcy-n16 (or data/darcy-n2).
"""

import sys

import h5py

from pdekit.data import generate, load_recipe, open_dataset, read_manifest, verify_dataset

samples = 2 if "--quick" in sys.argv else 16
folder = f"data/darcy-n{samples}"

recipe = load_recipe("datasets/darcy.toml").replace(samples=samples)  # every split capped
manifest = generate(recipe, folder, workers=1, progress=False)        # resumable, deterministic
print(f"{manifest['name']}: {manifest['splits']} in {len(manifest['shards'])} shard(s) -> {folder}")
assert verify_dataset(folder) == [], "the shards do not match the manifest"

# 1. As a torch Dataset (lazy: reads only the samples asked for).
train = open_dataset(folder, "train")
item = train[0]
print("train[0]: " + ", ".join(f"{k} {tuple(v.shape)} {v.dtype}" for k, v in item.items()))
print(f"inputs {train.inputs}, outputs {train.outputs}")

# 2. The manifest: the resolved recipe, each shard's sha256, per-field statistics.
stats = read_manifest(folder)["statistics"]["fields"]["u"]
print(f"u over the training split: mean {stats['mean']:.4g}, std {stats['std']:.4g}")

# 3. As plain HDF5 (each shard is also an xarray / netCDF4 file).
shard = f"{folder}/{manifest['shards'][0]['file']}"
with h5py.File(shard, "r") as f:
    print(f"{shard}: variables {sorted(f)}; CG iterations per sample {f['iterations'][:].tolist()}")
