"""Gaussian random fields on grids: the random inputs of PDE benchmark datasets.

* :func:`gaussian_random_field`: ``N(0, sigma^2 (-Laplacian + tau^2)^(-alpha))`` with a
  Neumann Laplacian on the unit cube, sampled by its cosine Karhunen-Loeve expansion (a
  type-II DCT), mean mode removed. This is the sampler of the standard Darcy benchmark
  (Li et al., "Fourier Neural Operator for Parametric PDEs", ICLR 2021, data generator
  ``GRF.m``): coefficient ``tau^(alpha-1) (pi^2 |k|^2 + tau^2)^(-alpha/2)`` on mode ``k``,
  scaled by the grid size, inverse orthonormal DCT.
* :func:`rbf_gaussian_process`: a 1D zero-mean Gaussian process with squared-exponential
  kernel ``exp(-|x - y|^2 / (2 l^2))`` by Cholesky factorisation (the input functions of the
  DeepONet antiderivative benchmark, Lu et al. 2021, with ``l = 0.2``).

Randomness comes from a ``numpy.random.Generator`` passed in: the same generator state gives
the same field on every platform.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import scipy.fft
import scipy.linalg

__all__ = ["gaussian_random_field", "grf_spectrum", "rbf_gaussian_process"]


def _check_generator(fn: str, rng) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"{fn}: `rng` must be a numpy.random.Generator, got {type(rng).__name__}")
    return rng


def grf_spectrum(shape: Sequence[int], alpha: float = 2.0, tau: float = 3.0) -> np.ndarray:
    """Square roots of the eigenvalues of ``(-Laplacian + tau^2)^(-alpha)`` (Neumann, unit
    cube), scaled as in the FNO data generator, on the cosine modes of ``shape``; the mean mode
    is zero."""
    grids = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    k2 = sum(g.astype(np.float64) ** 2 for g in grids)
    coef = tau ** (alpha - 1) * (np.pi**2 * k2 + tau**2) ** (-alpha / 2)
    coef[(0,) * len(shape)] = 0.0
    return coef


def gaussian_random_field(
    shape: Sequence[int],
    rng: np.random.Generator,
    *,
    alpha: float = 2.0,
    tau: float = 3.0,
    batch: int | None = None,
) -> np.ndarray:
    """Sample a Gaussian random field with Neumann cosine modes on a 1D/2D/3D grid.

    Parameters
    ----------
    shape : tuple of int
        Grid points per axis (the field is sampled at the points of the unit cube's grid).
    rng : numpy.random.Generator
        Source of randomness.
    alpha, tau : float
        Smoothness and inverse length scale of ``(-Laplacian + tau^2)^(-alpha)``.
    batch : int, optional
        Number of independent fields (a leading axis); one field when omitted.

    Returns
    -------
    numpy.ndarray
        ``shape`` (or ``(batch, *shape)``), float64, zero mean over the grid.
    """
    fn = "gaussian_random_field"
    _check_generator(fn, rng)
    shape = tuple(int(n) for n in shape)
    if not 1 <= len(shape) <= 3 or any(n < 1 for n in shape):
        raise ValueError(f"{fn}: `shape` must have 1 to 3 positive entries, got {shape}")
    if not alpha > 0 or not tau > 0:
        raise ValueError(f"{fn}: `alpha` and `tau` must be positive, got {alpha}, {tau}")
    count = 1 if batch is None else int(batch)
    if count < 1:
        raise ValueError(f"{fn}: `batch` must be positive, got {batch}")
    # scaled by the (geometric mean) grid size, as ``s * coef`` in the FNO generator
    coef = grf_spectrum(shape, alpha, tau) * float(np.prod(shape)) ** (1 / len(shape))
    xi = rng.standard_normal((count, *shape))
    axes = tuple(range(1, len(shape) + 1))
    fields = scipy.fft.idctn(coef * xi, type=2, axes=axes, norm="ortho")
    return fields if batch is not None else fields[0]


@functools.lru_cache(maxsize=8)
def _rbf_cholesky(points: bytes, length_scale: float, variance: float, jitter: float) -> np.ndarray:
    """Lower Cholesky factor of the RBF kernel matrix on ``points`` (cached: dataset generation
    draws thousands of functions on the same points)."""
    x = np.frombuffer(points, dtype=np.float64)
    kernel = variance * np.exp(-0.5 * ((x[:, None] - x[None, :]) / length_scale) ** 2)
    kernel[np.diag_indices_from(kernel)] += jitter * variance
    factor = scipy.linalg.cholesky(kernel, lower=True)
    factor.flags.writeable = False
    return factor


def rbf_gaussian_process(
    points: np.ndarray,
    rng: np.random.Generator,
    *,
    length_scale: float = 0.2,
    variance: float = 1.0,
    batch: int | None = None,
    jitter: float = 1e-10,
) -> np.ndarray:
    """Sample a 1D zero-mean Gaussian process with a squared-exponential kernel.

    Parameters
    ----------
    points : array of shape (n,)
        Where to sample.
    rng : numpy.random.Generator
        Source of randomness.
    length_scale, variance : float
        Kernel ``variance * exp(-|x - y|^2 / (2 length_scale^2))``.
    batch : int, optional
        Number of independent functions (a leading axis).
    jitter : float
        Added to the diagonal (relative to ``variance``) so the Cholesky factor exists.

    Returns
    -------
    numpy.ndarray
        ``(n,)`` or ``(batch, n)``, float64.
    """
    fn = "rbf_gaussian_process"
    _check_generator(fn, rng)
    x = np.asarray(points, dtype=np.float64)
    if x.ndim != 1 or x.size < 1:
        raise ValueError(f"{fn}: `points` must be a non-empty 1-D array, got shape {x.shape}")
    if not length_scale > 0 or not variance > 0:
        raise ValueError(f"{fn}: `length_scale` and `variance` must be positive")
    factor = _rbf_cholesky(x.tobytes(), float(length_scale), float(variance), float(jitter))
    count = 1 if batch is None else int(batch)
    samples = rng.standard_normal((count, x.size)) @ factor.T
    return samples if batch is not None else samples[0]
