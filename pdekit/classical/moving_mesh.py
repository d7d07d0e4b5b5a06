"""Moving meshes by the Monge-Ampere equation, and interpolation between meshes and grids.

A moved mesh keeps the nodes and connectivity of the uniform ``n x n`` grid of computational
coordinates ``xi`` in ``[0, 1]^2`` and places node ``xi`` at ``x = xi + grad phi(xi)``, with
``phi`` solving the Monge-Ampere equation of optimal transport

    ``M(xi + grad phi) det(I + Hess phi) = theta``,  ``theta = integral of M over [0, 1]^2``,

so every cell carries the same monitor mass (equidistribution), and ``d phi / d n = 0`` on the
walls (boundary nodes slide along them). Convexity of ``|xi|^2 / 2 + phi`` means no cell folds.
This is the reference the data-free mesh mover of Hu, Wang, Ma ("Better Neural PDE Solvers
Through Data-Free Mesh Movers", ICLR 2024, eq. 3-5) is compared with.

:func:`solve_monge_ampere` is the parabolic Monge-Ampere relaxation of Budd and Williams
("Moving mesh generation using the parabolic Monge-Ampere equation", SIAM J. Sci. Comput. 31,
2009) in the form of McRae, Cotter and Budd (SIAM J. Sci. Comput. 40, 2018, eq. 3.2):
``(I - gamma Laplacian) phi_tau = (M det(I + Hess phi) / theta)^(1/2)``, explicit in ``tau``,
the operator inverted by the fast cosine transform (Neumann), second-order finite differences.
Batched over meshes, on any device and float dtype.

The monitor of MM-PDE uses the solution gradient only (:func:`gradient_monitor`):
``M = 1 + |grad u| / (alpha * mean |grad u|)`` (the reference code's ``alpha = 0.01``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "MongeAmpereResult",
    "cell_areas",
    "equidistribution_spread",
    "gradient_monitor",
    "interpolate_from_mesh",
    "interpolate_grid",
    "solve_monge_ampere",
    "tangled_cells",
    "uniform_mesh",
]


def uniform_mesh(n: int, *, dtype=torch.float32, device=None) -> torch.Tensor:
    """The computational nodes ``xi``: ``(n, n, 2)``, ``xi[i, j] = (i, j) / (n - 1)``."""
    s = torch.linspace(0.0, 1.0, n, dtype=dtype, device=device)
    return torch.stack(torch.meshgrid(s, s, indexing="ij"), dim=-1)


def gradient_monitor(u: torch.Tensor, *, alpha: float = 0.01) -> torch.Tensor:
    """``M = 1 + |grad u| / (alpha * mean |grad u|)`` on the nodes of ``u`` ``(B, n, n)`` on
    ``[0, 1]^2`` (central differences; MM-PDE's monitor, Hu et al. 2024, appendix)."""
    if u.ndim != 3:
        raise ValueError(f"gradient_monitor: `u` must be (batch, n, n), got {tuple(u.shape)}")
    h = 1.0 / (u.shape[-1] - 1)
    gx, gy = torch.gradient(u, spacing=h, dim=(1, 2))
    g = torch.sqrt(gx * gx + gy * gy)
    mean = g.mean(dim=(1, 2), keepdim=True).clamp_min(torch.finfo(u.dtype).tiny)
    return 1.0 + g / (alpha * mean)


def interpolate_grid(values: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Bilinear interpolation of node values on the uniform grid of ``[0, 1]^2``.

    Shapes: ``values (B, n, m)`` (first index along ``x``), ``points (B, P, 2)`` or ``(P, 2)``
    -> ``(B, P)``. Points outside the square take the nearest boundary value.
    """
    if points.ndim == 2:
        points = points.expand(values.shape[0], *points.shape)
    grid = torch.stack((points[..., 1], points[..., 0]), dim=-1) * 2 - 1  # (W = y, H = x)
    out = F.grid_sample(values[:, None], grid[:, None].to(values.dtype), mode="bilinear",
                        padding_mode="border", align_corners=True)
    return out[:, 0, 0]


def _neumann_helmholtz_inverse(rhs: torch.Tensor, gamma: float) -> torch.Tensor:
    """Solve ``(I - gamma Laplacian_h) v = rhs`` on the nodes of ``[0, 1]^2`` with Neumann
    walls (the 5-point Laplacian with mirrored ghost nodes), by the FFT of the even extension
    (a discrete cosine transform of type I)."""
    n = rhs.shape[-1]
    h = 1.0 / (n - 1)
    ext = torch.cat((rhs, rhs.flip(-2)[..., 1:-1, :]), dim=-2)
    ext = torch.cat((ext, ext.flip(-1)[..., 1:-1]), dim=-1)
    m = 2 * (n - 1)
    k = torch.arange(m, dtype=rhs.dtype, device=rhs.device)
    mu = (2 - 2 * torch.cos(2 * torch.pi * k / m)) / h**2
    symbol = 1 + gamma * (mu[:, None] + mu[None, : m // 2 + 1])
    v = torch.fft.irfft2(torch.fft.rfft2(ext) / symbol, s=(m, m))
    return v[..., :n, :n]


def _derivatives(phi: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``phi_x, phi_y, phi_xx, phi_yy, phi_xy`` by central differences, mirrored ghosts."""
    h = 1.0 / (phi.shape[-1] - 1)
    p = F.pad(phi[:, None], (1, 1, 1, 1), mode="reflect")[:, 0]
    c = p[:, 1:-1, 1:-1]
    px = (p[:, 2:, 1:-1] - p[:, :-2, 1:-1]) / (2 * h)
    py = (p[:, 1:-1, 2:] - p[:, 1:-1, :-2]) / (2 * h)
    pxx = (p[:, 2:, 1:-1] - 2 * c + p[:, :-2, 1:-1]) / h**2
    pyy = (p[:, 1:-1, 2:] - 2 * c + p[:, 1:-1, :-2]) / h**2
    pxy = (p[:, 2:, 2:] - p[:, 2:, :-2] - p[:, :-2, 2:] + p[:, :-2, :-2]) / (4 * h * h)
    return px, py, pxx, pyy, pxy


@dataclass
class MongeAmpereResult:
    """What :func:`solve_monge_ampere` returns.

    ``mesh (B, n, n, 2)`` the moved nodes; ``phi (B, n, n)``; ``residual`` the max over nodes of
    ``|M det(I + Hess phi) / theta - 1|`` per mesh ``(B,)``; ``iterations``; ``wall_time``.
    """

    mesh: torch.Tensor
    phi: torch.Tensor
    residual: torch.Tensor
    iterations: int
    wall_time: float


def solve_monge_ampere(monitor: torch.Tensor, n: int | None = None, *, rtol: float = 1e-4,
                       maxiter: int = 2000, gamma: float = 0.2, step: float = 0.5) -> MongeAmpereResult:
    """The equidistributing mesh of ``monitor`` by the parabolic Monge-Ampere relaxation.

    Parameters
    ----------
    monitor : torch.Tensor
        ``(B, m, m)`` positive monitor values on the uniform nodes of ``[0, 1]^2`` (sampled
        bilinearly at the moving nodes).
    n : int, optional
        Mesh nodes per side (default ``m``).
    rtol : float
        Stop when no node moved by more than ``rtol`` times the node spacing in the last
        iteration, for every mesh (the discrete residual then sits at its discretisation level;
        its max over nodes is reported).
    maxiter, gamma, step
        Iteration cap, the smoothing ``gamma`` and pseudo-time step of the relaxation. A step
        that would fold a cell (``det <= 0`` or a convexity violation) is halved and retried.
    """
    if monitor.ndim != 3 or monitor.shape[1] != monitor.shape[2]:
        raise ValueError(f"solve_monge_ampere: `monitor` must be (batch, m, m), got {tuple(monitor.shape)}")
    if not torch.isfinite(monitor).all() or (monitor <= 0).any():
        raise ValueError("solve_monge_ampere: `monitor` must be finite and positive")
    start = time.perf_counter()
    n = monitor.shape[-1] if n is None else n
    xi = uniform_mesh(n, dtype=monitor.dtype, device=monitor.device)
    # trapezoid weights for theta on the monitor's nodes
    w = torch.ones(monitor.shape[-1], dtype=monitor.dtype, device=monitor.device)
    w[0] = w[-1] = 0.5
    theta = (monitor * w[:, None] * w[None, :]).sum(dim=(1, 2)) / w.sum() ** 2
    phi = torch.zeros(monitor.shape[0], n, n, dtype=monitor.dtype, device=monitor.device)

    def state(phi):
        px, py, pxx, pyy, pxy = _derivatives(phi)
        x = xi + torch.stack((px, py), dim=-1)
        det = (1 + pxx) * (1 + pyy) - pxy * pxy
        m = interpolate_grid(monitor, x.reshape(x.shape[0], -1, 2)).reshape(det.shape)
        ratio = m * det / theta[:, None, None]
        ok = (det > 0) & (1 + pxx > 0) & (1 + pyy > 0)
        return x, ratio, ok

    x, ratio, _ = state(phi)
    iterations = 0
    dt = torch.full((phi.shape[0], 1, 1), step, dtype=phi.dtype, device=phi.device)
    h = 1.0 / (n - 1)
    for iterations in range(1, maxiter + 1):  # noqa: B007
        s = torch.sqrt(ratio.clamp_min(0))
        update = _neumann_helmholtz_inverse(s - s.mean(dim=(1, 2), keepdim=True), gamma)
        for _ in range(20):
            trial = phi + dt * update
            x_t, ratio_t, ok_t = state(trial)
            good = ok_t.flatten(1).all(dim=1)
            if bool(good.all()):
                break
            dt = torch.where(good[:, None, None], dt, dt / 2)
        moved = float((x_t - x).abs().max())
        phi, x, ratio = trial, x_t, ratio_t
        if moved < rtol * h:
            break
    residual = (ratio - 1).abs().amax(dim=(1, 2))
    return MongeAmpereResult(x, phi, residual, iterations, time.perf_counter() - start)


def cell_areas(mesh: torch.Tensor) -> torch.Tensor:
    """Signed areas of the two triangles of each cell of a structured mesh ``(B, n, n, 2)``
    (lower-left and upper-right halves of the ``(i, j) -> (i + 1, j + 1)`` diagonal split):
    ``(B, 2, n - 1, n - 1)``; positive for an unfolded mesh."""
    a = mesh[:, :-1, :-1]
    b = mesh[:, 1:, :-1]
    c = mesh[:, 1:, 1:]
    d = mesh[:, :-1, 1:]

    def area(p, q, r):
        return 0.5 * ((q[..., 0] - p[..., 0]) * (r[..., 1] - p[..., 1])
                      - (q[..., 1] - p[..., 1]) * (r[..., 0] - p[..., 0]))

    return torch.stack((area(a, b, c), area(a, c, d)), dim=1)


def tangled_cells(mesh: torch.Tensor) -> torch.Tensor:
    """Cells with a non-positive area, per mesh ``(B,)`` (either diagonal split: the four
    corner triangles of the quadrilateral)."""
    a, b, c, d = mesh[:, :-1, :-1], mesh[:, 1:, :-1], mesh[:, 1:, 1:], mesh[:, :-1, 1:]

    def area(p, q, r):
        return ((q[..., 0] - p[..., 0]) * (r[..., 1] - p[..., 1])
                - (q[..., 1] - p[..., 1]) * (r[..., 0] - p[..., 0]))

    bad = (area(a, b, c) <= 0) | (area(a, c, d) <= 0) | (area(a, b, d) <= 0) | (area(b, c, d) <= 0)
    return bad.flatten(1).sum(dim=1)


def equidistribution_spread(mesh: torch.Tensor, monitor: torch.Tensor) -> torch.Tensor:
    """Coefficient of variation (std / mean) of the per-cell monitor mass ``M(centroid) * area``
    over the cells of each mesh ``(B,)``: 0 for perfect equidistribution."""
    areas = cell_areas(mesh).sum(dim=1)
    centroid = 0.25 * (mesh[:, :-1, :-1] + mesh[:, 1:, :-1] + mesh[:, 1:, 1:] + mesh[:, :-1, 1:])
    m = interpolate_grid(monitor, centroid.reshape(mesh.shape[0], -1, 2)).reshape(areas.shape)
    mass = (m * areas).flatten(1)
    return mass.std(dim=1) / mass.mean(dim=1)


def interpolate_from_mesh(mesh: torch.Tensor, values: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear interpolation of node values on a moved mesh at arbitrary points.

    The nodes of each mesh are triangulated by Delaunay (scipy) and the P1 interpolant is
    evaluated at ``points``; points outside the convex hull take the nearest node's value.
    Shapes: ``mesh (B, n, n, 2)``, ``values (B, n, n)``, ``points (P, 2)`` -> ``(B, P)``.
    """
    from scipy.interpolate import LinearNDInterpolator, NearestNDInterpolator
    from scipy.spatial import Delaunay

    nodes = mesh.detach().reshape(mesh.shape[0], -1, 2).cpu().double().numpy()
    vals = values.detach().reshape(values.shape[0], -1).cpu().double().numpy()
    query = points.detach().cpu().double().numpy()
    out = np.empty((nodes.shape[0], query.shape[0]))
    for b in range(nodes.shape[0]):
        tri = Delaunay(nodes[b])
        res = LinearNDInterpolator(tri, vals[b])(query)
        missing = np.isnan(res)
        if missing.any():
            res[missing] = NearestNDInterpolator(nodes[b], vals[b])(query[missing])
        out[b] = res
    return torch.as_tensor(out, dtype=values.dtype, device=values.device)
