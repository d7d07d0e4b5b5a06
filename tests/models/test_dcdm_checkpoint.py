"""The shipped DCDM checkpoint: loads with no code and cuts iterations against CG on a system
with obstacles it never saw (Kaneda et al. 2023)."""

from pathlib import Path

import pytest
import torch

import pdekit
from pdekit.bench.dcdm import make_system
from pdekit.linalg import cg, dcdm

CHECKPOINT = Path(__file__).resolve().parents[2] / "solvers" / "checkpoints" / "dcdm-poisson3d-64.pt"


def test_shipped_dcdm_checkpoint_reduces_iterations_on_a_fresh_system():
    M = pdekit.load_preconditioner(CHECKPOINT)
    assert M.net.dim == 3 and sum(p.numel() for p in M.net.parameters()) == 97_457
    A, b, solid = make_system(20, 3, 0.1, seed=11, device="cpu")
    assert solid is not None and solid.mean() > 0.05
    learned = dcdm(A, b, M, rtol=1e-4)
    plain = cg(A, b, rtol=1e-4)
    assert learned.converged and plain.converged
    assert learned.iterations * 2 <= plain.iterations, (learned.iterations, plain.iterations)
    flexible = cg(A, b, M=M, rtol=1e-4)  # the network as M in flexible CG
    assert flexible.converged and flexible.iterations < plain.iterations
    residual = torch.linalg.vector_norm(b - A.matvec(learned.x)) / torch.linalg.vector_norm(b)
    assert residual <= 1e-4


def test_shipped_2d_dcdm_checkpoint_reduces_iterations_on_a_fresh_system():
    M = pdekit.load_preconditioner(CHECKPOINT.with_name("dcdm-poisson2d.pt"))
    assert M.net.dim == 2
    A, b, _ = make_system(48, 2, 0.1, seed=12, device="cpu")
    learned = dcdm(A, b, M, rtol=1e-4)
    plain = cg(A, b, rtol=1e-4)
    assert learned.converged and learned.iterations * 2 <= plain.iterations, (learned.iterations,
                                                                               plain.iterations)


@pytest.mark.slow
def test_multiscale_proposals_cut_iterations_on_a_grid_four_times_the_training_size():
    """The shipped 2D network (trained on 64^2) at 256^2: cycling it over the grid and 2x and
    4x coarser ones takes far fewer DCDM iterations than the fine grid alone (142 -> 49)."""
    A, b, _ = make_system(256, 2, 0.0, seed=1000, device="cpu")
    iterations = {}
    for scales in ((1,), (1, 2, 4)):
        M = pdekit.load_preconditioner(CHECKPOINT.with_name("dcdm-poisson2d.pt"), scales=scales)
        result = dcdm(A, b, M, rtol=1e-4, depth=20, maxiter=400)
        assert result.converged
        iterations[scales] = result.iterations
    assert iterations[1, 2, 4] * 2 < iterations[1,], iterations
