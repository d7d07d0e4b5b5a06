"""Shared fixtures: every kernel runs on the CPU in float32 and float64, and on CUDA when present."""

from __future__ import annotations

import pytest
import torch

DEVICES = [pytest.param("cpu", id="cpu")]
if torch.cuda.is_available():
    DEVICES.append(pytest.param("cuda", id="cuda", marks=pytest.mark.gpu))

DTYPES = [
    pytest.param(torch.float32, id="float32"),
    pytest.param(torch.float64, id="float64"),
]

# Per-dtype tolerances for results compared against a float64 reference.
TOLERANCES = {torch.float32: 1e-4, torch.float64: 1e-10}


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    """The devices to test on: the CPU, and CUDA when present (marked `gpu`)."""
    return torch.device(request.param)


@pytest.fixture(params=DTYPES)
def dtype(request) -> torch.dtype:
    """float32 and float64."""
    return request.param


@pytest.fixture
def rtol_for():
    """Relative tolerance for comparing against a float64 reference in ``dtype``."""
    return lambda dtype: TOLERANCES[dtype]


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
