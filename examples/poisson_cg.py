"""Solve 3D Poisson problems with obstacles by (preconditioned) conjugate gradients.

Runs in a few seconds on a laptop CPU; pass `cuda` as the first argument to use a GPU.
"""

import sys

import numpy as np
import scipy.sparse.linalg as spla
import torch

from pdekit.linalg import StencilOperator, cg, ichol0, jacobi, multigrid, ssor

device = sys.argv[1] if len(sys.argv) > 1 else "cpu"
n = 48
generator = torch.Generator().manual_seed(0)
solid = torch.rand(n, n, n, generator=generator) < 0.1          # 10% random solid cells
A = StencilOperator((n, n, n), solid=solid, bc="dirichlet", device=device)
b = torch.rand(4, n, n, n, generator=generator, dtype=torch.float64).to(device)
b = b * (~A.solid)                                               # a batch of four right-hand sides

print(f"{A}\n")
for name, M in [("none", None), ("jacobi", jacobi(A)), ("ssor(1.5)", ssor(A, 1.5)),
                ("ichol0", ichol0(A)), ("multigrid", multigrid(A))]:
    res = cg(A, b, rtol=1e-8, M=M)
    print(f"M = {name:10s} {res.status.name:9s} iterations per system "
          f"{res.member_iterations.tolist()}  {res.wall_time:.2f} s")

# The same preconditioner inside SciPy's CG.
M = ichol0(A.to("cpu"))
x, info = spla.cg(A.to_scipy(), b[0].cpu().numpy().ravel(), rtol=1e-8, M=M.as_scipy())
x_ours = cg(A, b[0], rtol=1e-8, M=ichol0(A)).x.cpu().numpy().ravel()
print(f"\nscipy cg with our IC(0): info={info}, max |x_scipy - x_pdekit| = "
      f"{np.abs(x - x_ours).max():.2e}")
