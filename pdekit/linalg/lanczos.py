"""Lanczos iteration with full re-orthogonalisation: Ritz values and Ritz vectors.

Lanczos (1950); with full re-orthogonalisation as in Golub & Van Loan, *Matrix
Computations*, 4th ed., Algorithm 10.1.1 plus Sec. 10.3.1 (each new vector is
orthogonalised twice, classical Gram-Schmidt, against all previous ones: "twice is
enough"). ``A V_k = V_k T_k + beta_k v_{k+1} e_k^T``; the eigenpairs ``(theta_i, s_i)`` of the
tridiagonal ``T_k`` give Ritz pairs ``(theta_i, V_k s_i)`` with residual
``||A y_i - theta_i y_i|| = |beta_k s_{k,i}|``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import torch

from pdekit.linalg._checks import check_positive_int
from pdekit.linalg.operator import aslinearoperator

__all__ = ["LanczosResult", "lanczos"]


@dataclass
class LanczosResult:
    """Ritz approximation from :func:`lanczos`.

    Attributes
    ----------
    ritz_values : torch.Tensor
        ``(k,)`` ascending, float64 on the CPU.
    ritz_vectors : torch.Tensor or None
        ``(k, *vector_shape)``, unit norm, on the operator's device and dtype.
    residual_norms : torch.Tensor
        ``(k,)``: ``||A y_i - theta_i y_i||``, an a-posteriori accuracy bound per pair.
    alpha, beta : torch.Tensor
        Diagonal ``(k,)`` and off-diagonal ``(k-1,)`` of ``T_k`` (float64, CPU).
    steps : int
        ``k``: fewer than requested when an invariant subspace was found.
    """

    ritz_values: torch.Tensor
    ritz_vectors: torch.Tensor | None
    residual_norms: torch.Tensor
    alpha: torch.Tensor
    beta: torch.Tensor
    steps: int


def lanczos(
    A,
    num_steps: int,
    v0: torch.Tensor | None = None,
    *,
    return_vectors: bool = True,
    generator: torch.Generator | None = None,
) -> LanczosResult:
    """Run ``num_steps`` Lanczos steps on a symmetric operator.

    Parameters
    ----------
    A : LinearOperator or matrix-like
        Symmetric operator.
    num_steps : int
        Krylov dimension ``k`` (at most ``n``).
    v0 : torch.Tensor, optional
        Starting vector (any nonzero vector of ``vector_shape`` or ``(n,)``); default
        Gaussian random, from ``generator``.
    return_vectors : bool
        Also form the Ritz vectors (``k`` vectors of length ``n``).

    Returns
    -------
    LanczosResult
    """
    fn = "lanczos"
    A = aslinearoperator(A)
    if A.symmetric is False:
        raise ValueError(f"{fn}: `A` is tagged symmetric=False; Lanczos needs a symmetric operator")
    num_steps = check_positive_int(fn, "num_steps", num_steps)
    if num_steps > A.n:
        raise ValueError(f"{fn}: `num_steps` must be <= n = {A.n}, got {num_steps}")
    if v0 is None:
        v = torch.randn(A.n, dtype=A.dtype, generator=generator).to(A.device)
    else:
        if not isinstance(v0, torch.Tensor) or v0.numel() != A.n:
            raise ValueError(f"{fn}: `v0` must be a tensor with n = {A.n} entries")
        v = v0.to(device=A.device, dtype=A.dtype).reshape(A.n).clone()
    norm = torch.linalg.vector_norm(v)
    if not bool(norm > 0) or not bool(torch.isfinite(norm)):
        raise ValueError(f"{fn}: `v0` must be nonzero and finite")
    basis = torch.empty(num_steps, A.n, dtype=A.dtype, device=A.device)
    basis[0] = v / norm
    alpha = np.zeros(num_steps)
    beta = np.zeros(num_steps)
    scale = 0.0
    steps = num_steps
    for j in range(num_steps):
        w = A._matvec(basis[j].reshape(1, *A.vector_shape)).reshape(A.n)
        alpha[j] = float(torch.dot(w, basis[j]))
        for _ in range(2):  # full re-orthogonalisation, twice
            w = w - basis[: j + 1].T @ (basis[: j + 1] @ w)
        beta[j] = float(torch.linalg.vector_norm(w))
        scale = max(scale, abs(alpha[j]), beta[j])
        if j + 1 == num_steps:
            break
        if beta[j] <= 100 * torch.finfo(A.dtype).eps * max(scale, 1e-300):
            steps = j + 1  # invariant subspace: T_j is exact
            break
        basis[j + 1] = w / beta[j]
    alpha, off = alpha[:steps], beta[: steps - 1]
    values, vectors = scipy.linalg.eigh_tridiagonal(alpha, off)
    residual = np.abs(beta[steps - 1] * vectors[-1, :])
    ritz_vectors = None
    if return_vectors:
        s = torch.as_tensor(vectors.T, dtype=A.dtype, device=A.device)
        ritz_vectors = (s @ basis[:steps]).reshape(steps, *A.vector_shape)
    return LanczosResult(
        ritz_values=torch.from_numpy(values),
        ritz_vectors=ritz_vectors,
        residual_norms=torch.from_numpy(residual),
        alpha=torch.from_numpy(alpha.copy()),
        beta=torch.from_numpy(off.copy()),
        steps=steps,
    )
