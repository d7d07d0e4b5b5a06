"""A learned preconditioner inside CG: the deep conjugate direction method (Kaneda et al. 2023).

Loads the shipped 3D network, builds a pressure-Poisson system with random solid obstacles it
never saw, and solves it with plain CG, with the network as M in (flexible) CG, and with the DCDM
iteration (A-orthogonalising each direction against the last 2, the paper's depth, and against
the last 20, which costs 40 stored vectors and saves iterations). ``--quick`` uses a 16^3 grid (a
few seconds); the default is 32^3. Pass ``--device cuda`` to use a GPU.
"""

import argparse
from pathlib import Path

import pdekit
from pdekit.bench.dcdm import make_system
from pdekit.linalg import cg, dcdm

CHECKPOINT = Path(__file__).resolve().parents[1] / "solvers" / "checkpoints" / "dcdm-poisson3d-64.pt"

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true")
parser.add_argument("--device", default="cpu")
args = parser.parse_args()

size = 16 if args.quick else 32
A, b, solid = make_system(size, 3, fraction=0.1, seed=5, device=args.device)
print(f"{size}^3 pressure-Poisson system, {solid.mean():.0%} solid cells")

M = pdekit.load_preconditioner(CHECKPOINT, device=args.device)  # serves any grid and obstacles
for name, result in [("CG", cg(A, b, rtol=1e-6)),
                     ("CG, M = network", cg(A, b, M=M, rtol=1e-6)),     # flexible CG, bound to A
                     ("DCDM", dcdm(A, b, M, rtol=1e-6, depth=2)),
                     ("DCDM, depth 20", dcdm(A, b, M, rtol=1e-6, depth=20))]:
    print(f"{name:16s} {result.status.name:9s} {result.iterations:4d} iterations  {result.wall_time:.2f} s")
