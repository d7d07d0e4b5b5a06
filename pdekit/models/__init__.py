"""Layer 2: learned solvers as ``torch.nn.Module``s, each registered by name so that
checkpoints rebuild them with no code (:func:`load_model`).

The graph models (``MMPDE``, ``UniformGNN``) are imported on first use: their module imports
torch-geometric, which takes longer to import than the rest of pdekit together.
"""

import importlib

from pdekit.models.checkpoint import CheckpointError, load_checkpoint, load_model, save_checkpoint
from pdekit.models.dcdm import DCDMNet, LearnedPreconditioner
from pdekit.models.deeponet import DeepONet
from pdekit.models.fno import FNO2d, FNO3d
from pdekit.models.hard_constraint import HardConstraintFNO, SoftConstraintFNO
from pdekit.models.lsm import LatentSpectralModel
from pdekit.models.mesh_mover import DataFreeMeshMover
from pdekit.models.modern_unet import ModernUNet1d
from pdekit.models.multionet import MultiONet
from pdekit.models.normalization import NormalizedModel
from pdekit.models.pde_refiner import OneStepUNet, PDERefiner
from pdekit.models.registry import MODELS, build_model, model_arguments, model_name, register_model
from pdekit.models.unet import UNet

__all__ = [
    "MMPDE",
    "MODELS",
    "CheckpointError",
    "DCDMNet",
    "DataFreeMeshMover",
    "DeepONet",
    "FNO2d",
    "FNO3d",
    "HardConstraintFNO",
    "LatentSpectralModel",
    "LearnedPreconditioner",
    "ModernUNet1d",
    "MultiONet",
    "NormalizedModel",
    "OneStepUNet",
    "PDERefiner",
    "SoftConstraintFNO",
    "UNet",
    "UniformGNN",
    "build_model",
    "load_checkpoint",
    "load_model",
    "model_arguments",
    "model_name",
    "register_model",
    "save_checkpoint",
]


def __getattr__(name: str):
    if name in ("MMPDE", "UniformGNN"):
        return getattr(importlib.import_module("pdekit.models.mmpde"), name)
    raise AttributeError(f"module 'pdekit.models' has no attribute {name!r}")
