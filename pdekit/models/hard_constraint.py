"""Physics-informed hard constraints with a mixture of experts (PI-HC-MoE).

Chalapathi, Du, Krishnapriyan, "Scaling physics-informed hard constraints with
mixture-of-experts", ICLR 2024 (arXiv 2402.13412), sections 3-4.

An FNO maps the initial condition (broadcast over time) and the space-time grid to ``N`` basis
functions ``b(t, x)``; the prediction is ``u = b . w`` with ``w`` the nonlinear least-squares
solution of the PDE residual at ``m`` sampled collocation points, the initial-condition and
boundary residuals and a ridge term ``1e-4 w`` (their eq. 3):

    w* = argmin_w ||F(b w)||^2,

solved by Levenberg-Marquardt in float64 and differentiated by the implicit function theorem
(:mod:`pdekit.models.least_squares`). Derivatives of ``u`` are linear in ``w``: they are taken
once on the basis (finite differences on the grid, as the reference code does).

The mixture of experts (their section 4, eq. 5) splits the grid among ``K`` experts along
space by a fixed uniform router; expert ``k`` solves its own problem for ``w_k`` with the
collocation points of its block plus the global initial and boundary residuals, and
``u = sum_k 1[x in block k] b . w_k`` (no continuity across blocks). The ``K`` problems are one
batched solve, so they run in parallel on one device. ``experts = 1`` is the single global
hard constraint (PI-HC).

:class:`SoftConstraintFNO` is the soft-constraint baseline (PI-SC): the same FNO with one
output, trained with the same physics loss (:func:`physics_loss`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pdekit.models.fno import FourierNeuralOperator
from pdekit.models.least_squares import solve_least_squares
from pdekit.models.registry import register_model

__all__ = ["DiffusionSorptionPhysics", "HardConstraintFNO", "SoftConstraintFNO", "physics_loss"]


@dataclass(frozen=True)
class DiffusionSorptionPhysics:
    """Residuals of 1D diffusion-sorption (PDEBench; see :mod:`pdekit.classical.diffusion_sorption`)
    on a ``(t, x)`` grid of cell centres.

    ``pde = time_scale (u_t - D / R(u) u_xx)`` (the time scale makes the PDE residual
    dimensionless, commensurate with the initial and boundary residuals),
    ``ic = u(0, x) - u0(x)``, ``left = u(t, x_0) - 1``, ``right = u(t, x_end) - D u_x(t, x_end)``
    (boundary rows for ``t > 0``). Derivatives: second-order finite differences
    (``torch.gradient``), ``u_xx`` as the derivative of ``u_x`` (as the reference code).
    """

    D: float = 5e-4
    phi: float = 0.29
    rho_s: float = 2880.0
    k: float = 3.5e-4
    n_f: float = 0.874
    epsilon: float = 1e-6
    time_scale: float = 500.0
    ridge: float = 1e-4

    def retardation(self, u: torch.Tensor) -> torch.Tensor:
        c = (1.0 - self.phi) / self.phi * self.rho_s * self.k * self.n_f
        return 1.0 + c * (u.clamp(min=0.0) + self.epsilon) ** (self.n_f - 1.0)

    @staticmethod
    def derivatives(v: torch.Tensor, t: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(v_t, v_x, v_xx)`` of ``v`` (..., nt, nx) on the grid ``t``, ``x``."""
        (v_t,) = torch.gradient(v, spacing=(t.to(v.dtype),), dim=-2)
        (v_x,) = torch.gradient(v, spacing=(x.to(v.dtype),), dim=-1)
        (v_xx,) = torch.gradient(v_x, spacing=(x.to(v.dtype),), dim=-1)
        return v_t, v_x, v_xx

    def pde(self, u: torch.Tensor, u_t: torch.Tensor, u_xx: torch.Tensor) -> torch.Tensor:
        return self.time_scale * (u_t - self.D / self.retardation(u) * u_xx)

    def field_residuals(self, u: torch.Tensor, u0: torch.Tensor, t: torch.Tensor, x: torch.Tensor,
                        derivatives: tuple[torch.Tensor, ...] | None = None) -> dict[str, torch.Tensor]:
        """Residuals of fields ``u`` (B, nt, nx) with initial values ``u0`` (B, nx):
        ``pde`` (B, nt, nx), ``ic`` (B, nx), ``left``/``right`` (B, nt - 1). ``derivatives``:
        ``(u_t, u_x, u_xx)`` when known (a hard-constraint model's, taken on its basis),
        else finite differences of ``u``."""
        u_t, u_x, u_xx = self.derivatives(u, t, x) if derivatives is None else derivatives
        return {"pde": self.pde(u, u_t, u_xx), "ic": u[:, 0] - u0,
                "left": u[:, 1:, 0] - 1.0, "right": u[:, 1:, -1] - self.D * u_x[:, 1:, -1]}

    def least_squares_residual(self, w, b, b_t, b_xx, b0, u0, b_left, b_right, b_right_x):
        """``F(w)`` of one expert: PDE rows at its points (``b``, ``b_t``, ``b_xx``: (m, N)),
        IC rows (``b0``: (nx, N), ``u0``: (nx,)), boundary rows ((nt - 1, N) each), ridge."""
        return torch.cat([
            self.pde(b @ w, b_t @ w, b_xx @ w),
            b0 @ w - u0,
            b_left @ w - 1.0,
            b_right @ w - self.D * (b_right_x @ w),
            self.ridge * w,
        ])

    def least_squares_jacobian(self, w, b, b_t, b_xx, b0, u0, b_left, b_right, b_right_x):
        """``dF/dw`` of :meth:`least_squares_residual` in closed form: (M, N)."""
        u, u_xx = b @ w, b_xx @ w
        R = self.retardation(u)
        c = (1.0 - self.phi) / self.phi * self.rho_s * self.k * self.n_f
        dR = torch.where(u > 0, c * (self.n_f - 1.0) * (u.clamp(min=0.0) + self.epsilon) ** (self.n_f - 2.0),
                         torch.zeros_like(u))
        pde = self.time_scale * (b_t - (self.D / R)[:, None] * b_xx
                                 + (self.D * dR / R.square() * u_xx)[:, None] * b)
        eye = torch.eye(w.shape[0], dtype=w.dtype, device=w.device)
        return torch.cat([pde, b0, b_left, b_right - self.D * b_right_x, self.ridge * eye])


PHYSICS = {"diffusion-sorption": DiffusionSorptionPhysics}
INPUT_TIME_SCALE = 500.0  # the FNO sees t / 500 (diffusion-sorption): t = 400 is 0.8 whatever the grid


def physics_loss(physics: DiffusionSorptionPhysics, u: torch.Tensor, u0: torch.Tensor,
                 t: torch.Tensor, x: torch.Tensor, derivatives: tuple[torch.Tensor, ...] | None = None
                 ) -> torch.Tensor:
    """The physics-only training loss per sample (B,): mean squared PDE residual over the grid
    plus mean squared initial and boundary residuals (no interior solution labels).
    ``derivatives``: as in :meth:`DiffusionSorptionPhysics.field_residuals` (for a mixture of
    experts, each block's derivatives are its own expert's, so the loss does not difference
    across the discontinuities between blocks)."""
    r = physics.field_residuals(u, u0, t, x, derivatives)
    return sum(v.square().flatten(1).mean(1) for v in r.values())


def _inputs(u0: torch.Tensor, t: torch.Tensor, x: torch.Tensor, time_scale: float) -> torch.Tensor:
    batch, nx = u0.shape
    nt = t.shape[0]
    grid_t = (t / time_scale).to(u0.dtype)[None, :, None].expand(batch, nt, nx)
    grid_x = x.to(u0.dtype)[None, None, :].expand(batch, nt, nx)
    return torch.stack([u0[:, None, :].expand(batch, nt, nx), grid_t, grid_x], dim=1)


class _PhysicsFNO(nn.Module):
    def __init__(self, pde: str, out_channels: int, modes, width: int, layers: int, fc_dim: int,
                 padding: int, activate_last: bool):
        super().__init__()
        if pde not in PHYSICS:
            raise ValueError(f"{type(self).__name__}: unknown `pde` {pde!r}; available: {sorted(PHYSICS)}")
        self.physics = PHYSICS[pde]()
        self.fno = FourierNeuralOperator(3, out_channels, tuple(modes), width, layers, fc_dim, padding,
                                         "gelu", activate_last)


@register_model("pi-sc")
class SoftConstraintFNO(_PhysicsFNO):
    """Soft-constraint baseline (PI-SC): an FNO2d whose single output is the solution, trained
    with :func:`physics_loss` (Chalapathi et al. 2024, section 5).

    Parameters
    ----------
    pde : str
        ``"diffusion-sorption"``.
    modes, width, layers, fc_dim, padding
        The FNO2d backbone (paper: 8 x 8 modes, width 64, 5 layers, fc_dim 128).

    Shapes:
        ``forward(u0: (B, nx), t: (nt,), x: (nx,)) -> u: (B, nt, nx)``
    """

    def __init__(self, pde: str = "diffusion-sorption", modes=(8, 8), width: int = 64, layers: int = 5,
                 fc_dim: int = 128, padding: int = 8):
        super().__init__(pde, 1, modes, width, layers, fc_dim, padding, False)

    def forward(self, u0: torch.Tensor, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.fno(_inputs(u0, t, x, INPUT_TIME_SCALE))[:, 0]


@register_model("pi-hc")
class HardConstraintFNO(_PhysicsFNO):
    """Physics-informed hard constraint with ``experts`` spatial experts (PI-HC-MoE; PI-HC when
    ``experts = 1``), Chalapathi et al. 2024, eq. 3-5.

    Parameters
    ----------
    pde : str
        ``"diffusion-sorption"``.
    basis : int
        Basis functions ``N`` the FNO outputs (16 in the paper).
    experts : int
        Spatial experts ``K`` (the grid's ``nx`` must be divisible by it).
    points : int
        Collocation points per expert (paper: 20000), drawn uniformly without replacement from
        the expert's block at every forward pass (a fixed draw in eval mode).
    modes, width, layers, fc_dim, padding
        The FNO2d backbone.

    Other Parameters
    ----------------
    maxiter, rtol : int, float
        Levenberg-Marquardt iteration cap (50) and relative gradient tolerance.

    Shapes:
        ``forward(u0: (B, nx), t: (nt,), x: (nx,)) -> u: (B, nt, nx)``; after a call,
        ``last_solve`` holds the LM ``iterations`` and ``gradient_norm`` (B, K), and
        ``last_derivatives`` ``(u_t, u_x, u_xx)`` taken on the basis (each block with its
        expert's weights).
    """

    def __init__(self, pde: str = "diffusion-sorption", basis: int = 16, experts: int = 1,
                 points: int = 20000, modes=(8, 8), width: int = 64, layers: int = 5, fc_dim: int = 128,
                 padding: int = 8, maxiter: int = 50, rtol: float = 1e-6):
        super().__init__(pde, basis, modes, width, layers, fc_dim, padding, True)
        if experts < 1 or points < 1 or basis < 1:
            raise ValueError("HardConstraintFNO: `experts`, `points` and `basis` must be >= 1")
        self.experts, self.points, self.basis = int(experts), int(points), int(basis)
        self.options = {"maxiter": int(maxiter), "rtol": float(rtol), "atol": 1e-12,
                        "jacobian": self.physics.least_squares_jacobian}
        self.last_solve: dict[str, torch.Tensor] = {}
        self.last_derivatives: tuple[torch.Tensor, ...] | None = None

    def basis_functions(self, u0: torch.Tensor, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The FNO's basis ``b``: (B, N, nt, nx)."""
        return self.fno(_inputs(u0, t, x, INPUT_TIME_SCALE))

    def sample_points(self, nt: int, nx: int, device) -> torch.Tensor:
        """Flat ``t * nx + x`` indices of the collocation points: (K, m), expert ``k``'s from its
        block of ``nx / K`` columns (torch's global RNG in training, a fixed draw in eval)."""
        width = nx // self.experts
        size = nt * width
        m = min(self.points, size)
        generator = None
        if not self.training:
            generator = torch.Generator().manual_seed(0)
        local = torch.stack([torch.randperm(size, generator=generator)[:m] for _ in range(self.experts)])
        t_index, x_index = local // width, local % width
        offsets = torch.arange(self.experts)[:, None] * width
        return (t_index * nx + x_index + offsets).to(device)

    def forward(self, u0: torch.Tensor, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        batch, nx = u0.shape
        nt = t.shape[0]
        K, N = self.experts, self.basis
        if nx % K:
            raise ValueError(f"HardConstraintFNO: {nx} grid columns do not split among {K} experts")
        b = self.basis_functions(u0, t, x).double()
        b_t, b_x, b_xx = self.physics.derivatives(b, t.double(), x.double())
        index = self.sample_points(nt, nx, u0.device)  # (K, m)

        def at_points(v):  # (B, N, nt, nx) -> (B * K, m, N)
            flat = v.flatten(2)[:, :, index]  # (B, N, K, m)
            return flat.permute(0, 2, 3, 1).reshape(batch * K, -1, N)

        def global_rows(v):  # (B, rows, N) -> (B * K, rows, N), the same rows for every expert
            return v[:, None].expand(batch, K, *v.shape[1:]).reshape(batch * K, *v.shape[1:])

        params = (
            at_points(b), at_points(b_t), at_points(b_xx),
            global_rows(b[:, :, 0, :].transpose(1, 2)),
            u0.double()[:, None].expand(batch, K, nx).reshape(batch * K, nx),
            global_rows(b[:, :, 1:, 0].transpose(1, 2)),
            global_rows(b[:, :, 1:, -1].transpose(1, 2)),
            global_rows(b_x[:, :, 1:, -1].transpose(1, 2)),
        )
        w0 = torch.ones(batch * K, N, dtype=torch.float64, device=u0.device)
        w, iterations, gradient_norm = solve_least_squares(self.physics.least_squares_residual, w0, params,
                                                           **self.options)
        self.last_solve = {"iterations": iterations.reshape(batch, K),
                           "gradient_norm": gradient_norm.reshape(batch, K)}
        w = w.reshape(batch, K, N)

        def combine(v):  # u = sum_k 1[x in block k] v . w_k
            blocks = v.reshape(batch, N, nt, K, nx // K)
            return torch.einsum("bntkj,bkn->btkj", blocks, w).reshape(batch, nt, nx).to(u0.dtype)

        self.last_derivatives = tuple(combine(v) for v in (b_t, b_x, b_xx))
        return combine(b)


# -- 2D Navier-Stokes (vorticity form) -------------------------------------------------------
@dataclass(frozen=True)
class NavierStokesPhysics:
    """Residuals of 2D incompressible Navier-Stokes in vorticity form on the periodic unit
    square (see :mod:`pdekit.classical.navier_stokes`; Chalapathi et al. 2024, section 5.2):
    ``pde = w_t + u w_x + v w_y - nu Laplacian w`` with ``(u, v) = (psi_y, -psi_x)``,
    ``-Laplacian psi = w``; ``ic = w(0) - w0``; no boundary rows (periodic). Spatial
    derivatives and the velocity are spectral, ``w_t`` second-order finite differences, all
    linear in the basis weights: the residual is quadratic in ``w``."""

    nu: float = 1e-4
    ridge: float = 1e-4

    @staticmethod
    def derivatives(v: torch.Tensor, t: torch.Tensor,
                    x: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """``(v_t, v_x, v_y, Laplacian v, u, v)`` of vorticity fields ``v`` (..., nt, n, n),
        the last two the velocity they induce."""
        n = v.shape[-1]
        (v_t,) = torch.gradient(v, spacing=(t.to(v.dtype),), dim=-3)
        kx = torch.fft.fftfreq(n, d=1.0 / n, device=v.device, dtype=v.dtype)[:, None] * 2 * torch.pi
        ky = torch.fft.rfftfreq(n, d=1.0 / n, device=v.device, dtype=v.dtype)[None, :] * 2 * torch.pi
        k2 = kx**2 + ky**2
        safe = torch.where(k2 == 0, torch.ones_like(k2), k2)
        inverse = torch.where(k2 == 0, torch.zeros_like(k2), 1.0 / safe)
        v_hat = torch.fft.rfft2(v)

        def back(f):
            return torch.fft.irfft2(f, s=(n, n))

        psi_hat = v_hat * inverse
        return (v_t, back(1j * kx * v_hat), back(1j * ky * v_hat), back(-k2 * v_hat),
                back(1j * ky * psi_hat), back(-1j * kx * psi_hat))

    def pde(self, w_t, w_x, w_y, w_lap, u, v):
        return w_t + u * w_x + v * w_y - self.nu * w_lap

    def field_residuals(self, w: torch.Tensor, w0: torch.Tensor, t: torch.Tensor,
                        x: torch.Tensor | None = None,
                        derivatives: tuple[torch.Tensor, ...] | None = None) -> dict[str, torch.Tensor]:
        """``pde`` (B, nt, n, n) and ``ic`` (B, n, n) of vorticity fields ``w`` (B, nt, n, n)."""
        d = self.derivatives(w, t) if derivatives is None else derivatives
        return {"pde": self.pde(*d), "ic": w[:, 0] - w0}

    def least_squares_residual(self, w, b, b_t, b_x, b_y, b_lap, b_u, b_v, b0, w0):
        """``F(w)`` of one expert: PDE rows at its points (``b*``: (m, N)), IC rows (``b0``:
        (n^2, N), ``w0``: (n^2,)), ridge."""
        return torch.cat([self.pde(b_t @ w, b_x @ w, b_y @ w, b_lap @ w, b_u @ w, b_v @ w),
                          b0 @ w - w0, self.ridge * w])

    def least_squares_jacobian(self, w, b, b_t, b_x, b_y, b_lap, b_u, b_v, b0, w0):
        """``dF/dw`` in closed form: (M, N)."""
        pde = (b_t + (b_u @ w)[:, None] * b_x + (b_x @ w)[:, None] * b_u
               + (b_v @ w)[:, None] * b_y + (b_y @ w)[:, None] * b_v - self.nu * b_lap)
        eye = torch.eye(w.shape[0], dtype=w.dtype, device=w.device)
        return torch.cat([pde, b0, self.ridge * eye])


def _inputs3d(w0: torch.Tensor, t: torch.Tensor, time_scale: float) -> torch.Tensor:
    batch, n, _ = w0.shape
    nt = t.shape[0]
    shape = (batch, nt, n, n)
    grid = torch.arange(n, dtype=w0.dtype, device=w0.device) / n
    time = (t / time_scale).to(w0.dtype)[None, :, None, None].expand(shape)
    return torch.stack([w0[:, None].expand(shape), time, grid[None, None, :, None].expand(shape),
                        grid[None, None, None, :].expand(shape)], dim=1)


@register_model("pi-sc3d")
class SoftConstraintFNO3d(nn.Module):
    """Soft-constraint baseline on 2D Navier-Stokes: an FNO3d over ``(t, x, y)`` whose output is
    the vorticity, trained with :func:`physics_loss` and :class:`NavierStokesPhysics`.

    Shapes:
        ``forward(w0: (B, n, n), t: (nt,), x: (n,)) -> w: (B, nt, n, n)``
    """

    def __init__(self, nu: float = 1e-4, modes=(8, 8, 8), width: int = 32, layers: int = 8, fc_dim: int = 128,
                 padding: int = 0, time_scale: float = 5.0):
        super().__init__()
        self.physics = NavierStokesPhysics(nu=nu)
        self.time_scale = time_scale
        self.fno = FourierNeuralOperator(4, 1, tuple(modes), width, layers, fc_dim, padding, "gelu", False)

    def forward(self, w0: torch.Tensor, t: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        return self.fno(_inputs3d(w0, t, self.time_scale))[:, 0]


@register_model("pi-hc3d")
class HardConstraintFNO3d(nn.Module):
    """PI-HC-MoE on 2D Navier-Stokes (Chalapathi et al. 2024, section 5.2): an FNO3d over
    ``(t, x, y)`` gives ``basis`` functions (64 in the paper); ``experts = (Kx, Ky)`` split the
    square into ``Kx x Ky`` blocks over the full time axis (``(1, 1)``: the global constraint);
    each expert solves LM (float64, implicit backward) with ``points`` collocation points of its
    block plus the global initial-condition rows.

    Shapes:
        ``forward(w0: (B, n, n), t: (nt,), x: (n,)) -> w: (B, nt, n, n)``
    """

    def __init__(self, nu: float = 1e-4, basis: int = 64, experts=(2, 2), points: int = 10000,
                 modes=(8, 8, 8), width: int = 32, layers: int = 8, fc_dim: int = 128, padding: int = 0,
                 time_scale: float = 5.0, maxiter: int = 50, rtol: float = 1e-6):
        super().__init__()
        experts = tuple(int(k) for k in experts)
        if len(experts) != 2 or min(experts) < 1 or points < 1 or basis < 1:
            raise ValueError("HardConstraintFNO3d: `experts` must be two positive integers, `points` and "
                             "`basis` >= 1")
        self.physics = NavierStokesPhysics(nu=nu)
        self.time_scale = time_scale
        self.experts, self.points, self.basis = experts, int(points), int(basis)
        self.fno = FourierNeuralOperator(4, basis, tuple(modes), width, layers, fc_dim, padding, "gelu", True)
        self.options = {"maxiter": int(maxiter), "rtol": float(rtol), "atol": 1e-12,
                        "jacobian": self.physics.least_squares_jacobian}
        self.last_solve: dict[str, torch.Tensor] = {}
        self.last_derivatives: tuple[torch.Tensor, ...] | None = None

    def sample_points(self, nt: int, n: int, device) -> torch.Tensor:
        """Flat ``(t * n + x) * n + y`` indices: (Kx * Ky, m), each expert's from its block."""
        kx, ky = self.experts
        bx, by = n // kx, n // ky
        size = nt * bx * by
        m = min(self.points, size)
        generator = None if self.training else torch.Generator().manual_seed(0)
        rows = []
        for i in range(kx):
            for j in range(ky):
                local = torch.randperm(size, generator=generator)[:m]
                t_i, rest = local // (bx * by), local % (bx * by)
                x_i, y_i = rest // by + i * bx, rest % by + j * by
                rows.append((t_i * n + x_i) * n + y_i)
        return torch.stack(rows).to(device)

    def forward(self, w0: torch.Tensor, t: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        batch, n, _ = w0.shape
        nt = t.shape[0]
        kx, ky = self.experts
        K, N = kx * ky, self.basis
        if n % kx or n % ky:
            raise ValueError(f"HardConstraintFNO3d: a {n} x {n} grid does not split into {kx} x {ky} experts")
        b = self.fno(_inputs3d(w0, t, self.time_scale)).double()  # (B, N, nt, n, n)
        d = self.physics.derivatives(b, t.double())
        index = self.sample_points(nt, n, w0.device)

        def at_points(v):
            return v.flatten(2)[:, :, index].permute(0, 2, 3, 1).reshape(batch * K, -1, N)

        b0 = b[:, :, 0].flatten(2).transpose(1, 2)
        params = (at_points(b), *(at_points(v) for v in d),
                  b0[:, None].expand(batch, K, *b0.shape[1:]).reshape(batch * K, *b0.shape[1:]),
                  w0.double().flatten(1)[:, None].expand(batch, K, n * n).reshape(batch * K, n * n))
        start = torch.zeros(batch * K, N, dtype=torch.float64, device=w0.device)
        w, iterations, gradient_norm = solve_least_squares(self.physics.least_squares_residual, start, params,
                                                           **self.options)
        self.last_solve = {"iterations": iterations.reshape(batch, K),
                           "gradient_norm": gradient_norm.reshape(batch, K)}
        w = w.reshape(batch, kx, ky, N)

        def combine(v):
            blocks = v.reshape(batch, N, nt, kx, n // kx, ky, n // ky)
            return torch.einsum("bntiajc,bijn->btiajc", blocks, w).reshape(batch, nt, n, n).to(w0.dtype)

        self.last_derivatives = tuple(combine(v) for v in d)
        return combine(b)
