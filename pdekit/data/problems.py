"""The PDEs a recipe can name, and how each makes one sample.

A problem has a ``Parameters`` dataclass (the recipe's ``[parameters]`` table), a
:meth:`~Problem.layout` (the fields with their dimensions, roles and units, the coordinates)
and a :meth:`~Problem.sample` that draws the random inputs from a ``numpy`` generator and
solves with the classical solvers of :mod:`pdekit.classical` (each solve checked: an
unconverged one raises ``SolveError``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from pdekit.classical import darcy, poisson
from pdekit.classical.burgers2d import burgers2d_initial_condition, solve_burgers2d
from pdekit.classical.diffusion_sorption import solve_diffusion_sorption
from pdekit.classical.elliptic import solve_elliptic
from pdekit.classical.grf import gaussian_random_field, rbf_gaussian_process
from pdekit.classical.kuramoto_sivashinsky import ks_initial_condition, solve_kuramoto_sivashinsky
from pdekit.classical.navier_stokes import (
    fno_forcing,
    fno_vorticity_field,
    periodic_gaussian_random_field,
    solve_navier_stokes_2d,
)
from pdekit.linalg.stencil import _normalize_bc

__all__ = ["PROBLEMS", "FieldSpec", "Layout", "Problem"]


@dataclass(frozen=True)
class FieldSpec:
    """One stored field: its dimensions (without ``sample``), role and units."""

    name: str
    dims: tuple[str, ...]
    role: str  # "input", "output" or "mask"
    units: str = "1"
    long_name: str = ""


@dataclass
class Layout:
    """What a dataset of this problem stores."""

    fields: list[FieldSpec]
    coords: dict[str, np.ndarray]
    scalars: dict[str, str] = field(default_factory=dict)  # per-sample numbers: name -> units


@dataclass
class EllipticSystem:
    """The linear system of one sample, and how to turn its solution into stored fields."""

    A: Any  # StencilOperator
    f: torch.Tensor
    finish: Any  # (u: numpy array, solver_scalars: dict) -> (fields, scalars)


class Problem:
    """Base class of the registered problems."""

    name: ClassVar[str]
    Parameters: ClassVar[type]
    description: ClassVar[str]

    def layout(self, params) -> Layout:
        raise NotImplementedError

    def sample(self, params, solver, rng: np.random.Generator) -> tuple[dict, dict]:
        """One sample: ``({field: array}, {scalar: number})``."""
        raise NotImplementedError

    #: How many samples of a shard :meth:`sample_batch` is handed at once.
    batch_size: ClassVar[int] = 1

    #: Whether :meth:`sample_batch` takes ``device=`` (its solver runs in PyTorch on any
    #: device; the random draws stay on the CPU, so a sample's inputs do not depend on it).
    runs_on_device: ClassVar[bool] = False

    def sample_batch(self, params, solver, rngs: list[np.random.Generator]) -> list[tuple[dict, dict]]:
        """Several samples, one per generator (default: :meth:`sample` for each). Problems with
        a batched solver override it; sample ``i`` may depend only on ``rngs[i]`` (see
        :meth:`batch_invariant`). Problems with :attr:`runs_on_device` also take a keyword
        ``device`` and return NumPy arrays on the host."""
        return [self.sample(params, solver, rng) for rng in rngs]

    def batch_invariant(self, params) -> bool:
        """Whether a sample is the same whatever the batch it is solved in (up to rounding), so
        that a generator may change :attr:`batch_size`. False where a batch shares a quantity
        drawn from all its members (e.g. a time step from the batch's largest velocity)."""
        return True

    def for_split(self, params, split: str):
        """The parameters of ``split``'s samples (default: the recipe's; e.g. longer test
        trajectories)."""
        return params


class BatchedProblem(Problem):
    """A problem whose solver works on batches: it defines :meth:`sample_batch`, and one
    sample is a batch of one."""

    def sample(self, params, solver, rng: np.random.Generator) -> tuple[dict, dict]:
        return self.sample_batch(params, solver, [rng])[0]

    def sample_batch(self, params, solver, rngs: list[np.random.Generator]) -> list[tuple[dict, dict]]:
        raise NotImplementedError


_SOLVER_SCALARS = {"iterations": "1", "relative_residual": "1"}


# -- Darcy ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class DarcyParameters:
    """Darcy flow on the unit square (see :mod:`pdekit.classical.darcy`).

    Attributes
    ----------
    size : int
        Stored grid points per side (boundary included).
    fine_size : int
        Grid points per side of the solve; ``fine_size - 1`` a multiple of ``size - 1``.
    alpha, tau : float
        Smoothness and inverse length scale of the Gaussian random field that is thresholded
        into the coefficient (covariance ``(-Laplacian + tau^2)^(-alpha)``).
    values : list of float
        The coefficient where the field is >= 0 and where it is < 0.
    forcing : float
        The constant source ``f``.
    """

    size: int = 85
    fine_size: int = 421
    alpha: float = 2.0
    tau: float = 3.0
    values: tuple = (12.0, 3.0)
    forcing: float = 1.0

    def __post_init__(self):
        if self.size < 3 or self.fine_size < self.size:
            raise ValueError(f"need 3 <= size <= fine_size, got size={self.size}, fine_size={self.fine_size}")
        if (self.fine_size - 1) % (self.size - 1):
            raise ValueError(
                f"(fine_size - 1) must be a multiple of (size - 1) so the coarse grid is a "
                f"subset of the fine one, got fine_size={self.fine_size}, size={self.size}"
            )
        if len(self.values) != 2 or min(self.values) <= 0:
            raise ValueError(f"`values` must be two positive numbers, got {self.values}")
        if self.alpha <= 0 or self.tau <= 0:
            raise ValueError("`alpha` and `tau` must be positive")


class DarcyProblem(Problem):
    name = "darcy"
    Parameters = DarcyParameters
    description = "-div(a grad u) = f on (0,1)^2, u = 0 on the boundary; a thresholded GRF"

    def layout(self, params: DarcyParameters) -> Layout:
        x = np.linspace(0.0, 1.0, params.size)
        return Layout(
            fields=[FieldSpec("a", ("x", "y"), "input", "1", "diffusion coefficient"),
                    FieldSpec("u", ("x", "y"), "output", "1", "pressure")],
            coords={"x": x, "y": x.copy()},
            scalars=dict(_SOLVER_SCALARS),
        )

    def system(self, params: DarcyParameters, rng) -> EllipticSystem:
        a = darcy.darcy_coefficient(params.fine_size, rng, alpha=params.alpha, tau=params.tau,
                                    values=params.values)
        A = darcy.darcy_operator(a)
        f = torch.full(A.grid_shape, float(params.forcing), dtype=A.dtype)
        factor = (params.fine_size - 1) // (params.size - 1)

        def finish(u_interior: np.ndarray, scalars: dict):
            u = np.zeros_like(a)
            u[1:-1, 1:-1] = u_interior
            return {"a": darcy.subsample(a, factor), "u": darcy.subsample(u, factor)}, scalars

        return EllipticSystem(A, f, finish)

    def sample(self, params: DarcyParameters, solver, rng):
        return _solve_system(self.system(params, rng), solver)


def _solve_system(system: EllipticSystem, solver) -> tuple[dict, dict]:
    solution = solve_elliptic(system.A, system.f, rtol=solver.rtol, method=solver.method)
    return system.finish(solution.u.cpu().numpy(),
                         {"iterations": solution.iterations,
                          "relative_residual": solution.relative_residual})


# -- Poisson ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class PoissonParameters:
    """Poisson ``-Laplacian u = f`` on the unit square/cube with a random right-hand side and
    optional random solid obstacles (spheres and boxes; Neumann at their faces).

    Attributes
    ----------
    shape : list of int
        Grid points per axis (2 or 3 axes).
    bc : str or list
        ``"dirichlet"``, ``"neumann"``, one per axis, or ``[low, high]`` per face.
    rhs_alpha, rhs_tau : float
        Smoothness and inverse length scale of the Gaussian-random-field source.
    obstacle_fraction : float
        Fraction of solid cells (0: no obstacles; at most 0.9).
    obstacle_kinds : list of str
        Obstacle shapes drawn: ``"sphere"``, ``"box"``.
    obstacle_radius : list of float
        ``[min, max]`` obstacle radius as a fraction of the domain.
    """

    shape: tuple = (64, 64)
    bc: Any = "dirichlet"
    rhs_alpha: float = 2.0
    rhs_tau: float = 3.0
    obstacle_fraction: float = 0.0
    obstacle_kinds: tuple = ("sphere", "box")
    obstacle_radius: tuple = (0.03, 0.1)

    def __post_init__(self):
        if len(self.shape) not in (2, 3) or any(not isinstance(n, int) or n < 2 for n in self.shape):
            raise ValueError(f"`shape` must be 2 or 3 integers >= 2, got {self.shape}")
        bc = self.bc
        if isinstance(bc, list):
            object.__setattr__(self, "bc", tuple(tuple(b) if isinstance(b, list) else b for b in bc))
        _normalize_bc(self.bc, len(self.shape))
        if not 0 <= self.obstacle_fraction <= 0.9:
            raise ValueError(f"`obstacle_fraction` must lie in [0, 0.9], got {self.obstacle_fraction}")


class PoissonProblem(Problem):
    name = "poisson"
    Parameters = PoissonParameters
    description = "-Laplacian u = f with a Gaussian-random-field f, optional solid obstacles"

    def layout(self, params: PoissonParameters) -> Layout:
        names = ("x", "y", "z")[: len(params.shape)]
        coords = poisson.grid_coordinates(params.shape, params.bc)
        fields = [FieldSpec("f", names, "input", "1", "source")]
        if params.obstacle_fraction > 0:
            fields.append(FieldSpec("solid", names, "mask", "1", "solid cells (1) and fluid (0)"))
        fields.append(FieldSpec("u", names, "output", "1", "solution (zero on solid cells)"))
        scalars = dict(_SOLVER_SCALARS)
        if params.obstacle_fraction > 0:
            scalars["solid_fraction"] = "1"
        return Layout(fields=fields, coords=dict(zip(names, coords, strict=True)), scalars=scalars)

    def system(self, params: PoissonParameters, rng) -> EllipticSystem:
        shape = tuple(params.shape)
        solid = None
        if params.obstacle_fraction > 0:
            anchor = poisson.dirichlet_anchor_axis(params.bc, len(shape))
            solid = poisson.random_obstacles(
                shape, rng, fraction=params.obstacle_fraction, kinds=params.obstacle_kinds,
                radius=tuple(params.obstacle_radius), anchor_axis=anchor,
            )
        f = gaussian_random_field(shape, rng, alpha=params.rhs_alpha, tau=params.rhs_tau)
        if solid is not None:
            f = np.where(solid, 0.0, f)
        A = poisson.operator(shape, bc=params.bc, solid=solid)

        def finish(u: np.ndarray, scalars: dict):
            fields = {"f": f}
            if solid is not None:
                fields["solid"] = solid.astype(np.int8)
                scalars = {**scalars, "solid_fraction": float(solid.mean())}
            fields["u"] = u
            return fields, scalars

        return EllipticSystem(A, torch.from_numpy(f), finish)

    def sample(self, params: PoissonParameters, solver, rng):
        return _solve_system(self.system(params, rng), solver)


# -- Antiderivative --------------------------------------------------------------------------
@dataclass(frozen=True)
class AntiderivativeParameters:
    """``ds/dx = u``, ``s(0) = 0`` on [0, 1] with ``u`` a zero-mean Gaussian process (RBF
    kernel), the DeepONet benchmark of Lu et al. (2021).

    Attributes
    ----------
    sensors : int
        Points of ``[0, 1]`` where ``u`` and ``s`` are stored.
    length_scale : float
        Length scale of the RBF kernel of ``u``.
    refinement : int
        ``u`` is drawn on a grid this many times finer than the sensors and integrated exactly.
    """

    sensors: int = 100
    length_scale: float = 0.2
    refinement: int = 10

    def __post_init__(self):
        if self.sensors < 2 or self.refinement < 1:
            raise ValueError("`sensors` must be >= 2 and `refinement` >= 1")
        if self.length_scale <= 0:
            raise ValueError("`length_scale` must be positive")


class AntiderivativeProblem(Problem):
    name = "antiderivative"
    Parameters = AntiderivativeParameters
    description = "s(x) = integral of u from 0 to x; u a Gaussian process with RBF kernel"

    def layout(self, params: AntiderivativeParameters) -> Layout:
        return Layout(
            fields=[FieldSpec("u", ("x",), "input", "1", "input function at the sensors"),
                    FieldSpec("s", ("x",), "output", "1", "antiderivative at the sensors")],
            coords={"x": np.linspace(0.0, 1.0, params.sensors)},
        )

    def sample(self, params: AntiderivativeParameters, solver, rng):
        # u is drawn on a fine grid that contains the sensors; s is the exact integral of its
        # piecewise-linear interpolant (cumulative trapezoid rule).
        fine = np.linspace(0.0, 1.0, (params.sensors - 1) * params.refinement + 1)
        u = rbf_gaussian_process(fine, rng, length_scale=params.length_scale)
        s = np.concatenate([[0.0], np.cumsum(0.5 * (u[1:] + u[:-1]) * np.diff(fine))])
        return {"u": u[:: params.refinement], "s": s[:: params.refinement]}, {}



# -- Diffusion-sorption ----------------------------------------------------------------------
@dataclass(frozen=True)
class DiffusionSorptionParameters:
    """1D diffusion-sorption, the PDEBench setup (see :mod:`pdekit.classical.diffusion_sorption`):
    ``nx`` cells, ``nt`` stored times on ``[0, t_end]``, ``u0 ~ U(u0_range)`` constant in space;
    ``substeps`` implicit BDF2 steps between stored times.

    Attributes
    ----------
    nx : int
        Cells of ``[0, 1]``.
    nt : int
        Stored times, ``t_end`` included.
    t_end : float
        Final time (seconds).
    u0_range : list of float
        ``[low, high]`` of the uniform draw of the constant initial value.
    substeps : int
        Implicit BDF2 steps between two stored times.
    """

    nx: int = 1024
    nt: int = 101
    t_end: float = 500.0
    u0_range: tuple = (0.0, 0.2)
    substeps: int = 10

    def __post_init__(self):
        if self.nx < 4 or self.nt < 2 or self.substeps < 1 or self.t_end <= 0:
            raise ValueError("need nx >= 4, nt >= 2, substeps >= 1 and t_end > 0")
        if len(self.u0_range) != 2 or not 0 <= self.u0_range[0] <= self.u0_range[1]:
            raise ValueError(f"`u0_range` must be [low, high] with 0 <= low <= high, got {self.u0_range}")


class DiffusionSorptionProblem(BatchedProblem):
    name = "diffusion-sorption"
    Parameters = DiffusionSorptionParameters
    description = "u_t = D / R(u) u_xx, Freundlich sorption; u(0,t) = 1, u(1,t) = D u_x(1,t) (PDEBench)"
    batch_size = 50

    def layout(self, params: DiffusionSorptionParameters) -> Layout:
        return Layout(
            fields=[FieldSpec("u", ("t", "x"), "output", "1", "concentration u(t, x)")],
            coords={"t": np.linspace(0.0, params.t_end, params.nt),
                    "x": (np.arange(params.nx) + 0.5) / params.nx},
            scalars={"u0": "1", "newton_iterations": "1"},
        )

    def sample_batch(self, params: DiffusionSorptionParameters, solver, rngs):
        u0 = np.array([rng.uniform(*params.u0_range) for rng in rngs])
        sol = solve_diffusion_sorption(u0, nx=params.nx, t_end=params.t_end, nt=params.nt,
                                       substeps=params.substeps)
        return [({"u": sol.u[i]}, {"u0": float(u0[i]), "newton_iterations": sol.newton_iterations})
                for i in range(len(rngs))]



# -- 2D Navier-Stokes (vorticity) -----------------------------------------------------------
@dataclass(frozen=True)
class NavierStokes2DParameters:
    """2D incompressible Navier-Stokes in vorticity form on the periodic unit square (see
    :mod:`pdekit.classical.navier_stokes`): ``n x n`` points (``test_size`` in the other splits
    than ``train``), ``nt`` stored times on ``[0, t_end]``, viscosity ``nu``; the time step
    follows the CFL number ``cfl``. Two set-ups: ``initial = "squared-exponential"``,
    ``forcing = "none"`` (PI-HC-MoE: unforced, initial vorticity a Gaussian random field with a
    squared-exponential spectrum, ``length_scale``, standard deviation ``std``) and ``initial =
    "fno"``, ``forcing = "fno"`` (the FNO benchmark: ``N(0, 7^(3/2) (-Laplacian + 49
    I)^(-2.5))`` initial vorticity and the forcing ``0.1 (sin 2 pi (x + y) + cos 2 pi (x +
    y))``; ``length_scale`` and ``std`` unused).

    Attributes
    ----------
    size : int
        Points per side in the ``train`` split (even).
    test_size : int
        Points per side in the other splits (even).
    nt : int
        Stored times, ``t_end`` included.
    t_end : float
        Final time.
    nu : float
        Viscosity.
    length_scale, std : float
        Length scale and standard deviation of the initial-vorticity random field.
    cfl : float
        CFL number that sets the time step.
    initial : {"squared-exponential", "fno"}
        The initial-vorticity random field.
    forcing : {"none", "fno"}
        The steady forcing.
    solve_size : int
        Points per side of the solve (0: the stored size); a multiple of ``size`` and
        ``test_size``, which keep every ``solve_size / size``-th point (the FNO data: solved on
        256 x 256, stored on 64 x 64).
    dt : float
        Time step (0: from ``cfl`` and the initial velocity, at most 0.01).
    """

    size: int = 64
    test_size: int = 256
    nt: int = 64
    t_end: float = 5.0
    nu: float = 1e-4
    length_scale: float = 0.8
    std: float = 1.0
    cfl: float = 0.5
    initial: str = "squared-exponential"
    forcing: str = "none"
    solve_size: int = 0
    dt: float = 0.0

    def __post_init__(self):
        if min(self.size, self.test_size) < 4 or self.size % 2 or self.test_size % 2:
            raise ValueError("`size` and `test_size` must be even numbers >= 4")
        if self.nt < 2 or self.t_end <= 0 or self.nu < 0 or self.length_scale <= 0 or self.std <= 0:
            raise ValueError("need nt >= 2, t_end > 0, nu >= 0, length_scale > 0 and std > 0")
        if self.initial not in ("squared-exponential", "fno"):
            raise ValueError(f"`initial` must be 'squared-exponential' or 'fno', got {self.initial!r}")
        if self.forcing not in ("none", "fno"):
            raise ValueError(f"`forcing` must be 'none' or 'fno', got {self.forcing!r}")
        misfit = self.solve_size and (self.solve_size % self.size or self.solve_size % self.test_size)
        if self.solve_size < 0 or misfit:
            raise ValueError(f"`solve_size` must be 0 or a multiple of `size` ({self.size}) and `test_size` "
                             f"({self.test_size}), got {self.solve_size}")
        if self.dt < 0:
            raise ValueError(f"`dt` must be >= 0 (0: from `cfl`), got {self.dt}")


class NavierStokes2DProblem(BatchedProblem):
    name = "navier-stokes2d"
    Parameters = NavierStokes2DParameters
    description = ("w_t + u.grad w = nu Laplacian w + f, periodic; GRF initial vorticity; unforced "
                   "(PI-HC-MoE) or the FNO benchmark's forcing")
    batch_size = 16
    runs_on_device = True

    def for_split(self, params: NavierStokes2DParameters, split: str):
        return params if split == "train" else dataclasses.replace(params, size=params.test_size)

    def batch_invariant(self, params: NavierStokes2DParameters) -> bool:
        return params.dt > 0  # otherwise the step follows the batch's largest initial velocity

    def layout(self, params: NavierStokes2DParameters) -> Layout:
        x = np.arange(params.size) / params.size
        return Layout(
            fields=[FieldSpec("w", ("t", "x", "y"), "output", "1/s", "vorticity w(t, x, y)")],
            coords={"t": np.linspace(0.0, params.t_end, params.nt), "x": x, "y": x.copy()},
            scalars={"steps": "1", "dt": "s"},
        )

    def sample_batch(self, params: NavierStokes2DParameters, solver, rngs, *, device=None):
        n = params.solve_size or params.size
        if params.initial == "fno":
            w0 = np.stack([fno_vorticity_field(n, rng)[0] for rng in rngs])
        else:
            w0 = np.stack([periodic_gaussian_random_field(n, rng, length_scale=params.length_scale,
                                                          std=params.std)[0] for rng in rngs])
        forcing = fno_forcing(n) if params.forcing == "fno" else None
        sol = solve_navier_stokes_2d(torch.from_numpy(w0).to(device), nu=params.nu, t_end=params.t_end,
                                     nt=params.nt, cfl=params.cfl, forcing=forcing, dt=params.dt or None)
        step = n // params.size
        w = sol.w[..., ::step, ::step].cpu().numpy()
        return [({"w": w[i]}, {"steps": sol.steps, "dt": sol.dt}) for i in range(len(rngs))]

# -- Kuramoto-Sivashinsky -------------------------------------------------------------------
@dataclass(frozen=True)
class KuramotoSivashinskyParameters:
    """1D Kuramoto-Sivashinsky trajectories, the PDE-Refiner / LPSDA setup (see
    :mod:`pdekit.classical.kuramoto_sivashinsky`): per trajectory ``L ~ U(length)``, stored time
    step ``dt * U(1 - dt_spread, 1 + dt_spread)`` (LPSDA draws the end time within 10%),
    ``nu ~ U(viscosity)``, a sum-of-sines initial condition, ``burn_in`` discarded frames, then
    ``frames`` stored ones (``eval_frames`` in the other splits than ``train``).

    Attributes
    ----------
    points : int
        Grid points of the periodic interval (even).
    length : list of float
        ``[low, high]`` of the uniform draw of the domain length ``L``.
    dt : float
        Nominal time between stored frames.
    dt_spread : float
        Relative spread of each trajectory's frame step around ``dt``.
    viscosity : list of float
        ``[low, high]`` of the uniform draw of ``nu`` (equal bounds: fixed).
    burn_in : int
        Frames solved and discarded before the stored ones.
    frames : int
        Stored frames per ``train`` trajectory.
    eval_frames : int
        Stored frames per trajectory of the other splits.
    substeps : int
        ETDRK4 steps per frame.
    terms : int
        Sines in the initial condition.
    amplitude : float
        Bound of the uniform draw of each sine's amplitude.
    wavenumbers : list of int
        ``[low, high]`` of the integer wavenumbers of the sines.
    """

    points: int = 256
    length: tuple = (57.6, 70.4)
    dt: float = 0.2
    dt_spread: float = 0.1
    viscosity: tuple = (1.0, 1.0)
    burn_in: int = 360
    frames: int = 140
    eval_frames: int = 640
    substeps: int = 8
    terms: int = 10
    amplitude: float = 0.5
    wavenumbers: tuple = (1, 2)

    def __post_init__(self):
        if self.points < 8 or self.points % 2:
            raise ValueError(f"`points` must be an even number >= 8, got {self.points}")
        for name in ("length", "viscosity", "wavenumbers"):
            pair = getattr(self, name)
            if len(pair) != 2 or pair[0] > pair[1] or pair[0] <= 0:
                raise ValueError(f"`{name}` must be [low, high] with 0 < low <= high, got {pair}")
        if self.dt <= 0 or not 0 <= self.dt_spread < 1:
            raise ValueError("`dt` must be positive and `dt_spread` lie in [0, 1)")
        if self.frames < 2 or self.eval_frames < 2 or self.burn_in < 0 or self.substeps < 1:
            raise ValueError("need frames >= 2, eval_frames >= 2, burn_in >= 0, substeps >= 1")


class KuramotoSivashinskyProblem(BatchedProblem):
    name = "ks1d"
    Parameters = KuramotoSivashinskyParameters
    description = "u_t + u u_x + u_xx + nu u_xxxx = 0, periodic; ETDRK4 trajectories (PDE-Refiner)"
    batch_size = 128
    runs_on_device = True

    def for_split(self, params: KuramotoSivashinskyParameters, split: str):
        if split == "train" or params.eval_frames == params.frames:
            return params
        return dataclasses.replace(params, frames=params.eval_frames)

    def layout(self, params: KuramotoSivashinskyParameters) -> Layout:
        return Layout(
            fields=[FieldSpec("u", ("t", "x"), "output", "1", "trajectory u(t, x)")],
            coords={"t": np.arange(params.frames, dtype=np.float64),
                    "x": np.arange(params.points) / params.points},
            scalars={"length": "1", "dx": "1", "dt": "s", "nu": "1"},
        )

    def _draw(self, params: KuramotoSivashinskyParameters, rng: np.random.Generator):
        length = rng.uniform(*params.length)
        dt = params.dt * rng.uniform(1 - params.dt_spread, 1 + params.dt_spread)
        nu = rng.uniform(*params.viscosity)
        u0 = ks_initial_condition(params.points, length, rng, terms=params.terms,
                                  amplitude=params.amplitude, wavenumbers=tuple(params.wavenumbers))
        return u0, length, dt, nu

    def sample_batch(self, params: KuramotoSivashinskyParameters, solver, rngs, *, device=None):
        drawn = [self._draw(params, rng) for rng in rngs]
        u0 = torch.tensor(np.stack([d[0] for d in drawn]), device=device)
        length, dt, nu = (torch.tensor([d[i] for d in drawn]) for i in (1, 2, 3))
        u = solve_kuramoto_sivashinsky(u0, length=length, dt=dt, nu=nu, frames=params.frames,
                                       burn_in=params.burn_in, substeps=params.substeps).cpu().numpy()
        return [({"u": u[i]}, {"length": float(length[i]), "dx": float(length[i]) / params.points,
                               "dt": float(dt[i]), "nu": float(nu[i])}) for i in range(len(rngs))]


# -- 2D viscous Burgers (MM-PDE) --------------------------------------------------------------
@dataclass(frozen=True)
class Burgers2DParameters:
    """2D viscous Burgers on the periodic unit square, the MM-PDE benchmark (see
    :mod:`pdekit.classical.burgers2d`): a random sum-of-sines initial condition scaled to
    ``max |u0| = amplitude``, solved pseudo-spectrally on ``points x points`` nodes (stored at that
    resolution; learned solvers subsample it), ``frames`` frames over ``[0, t_end]``.

    Attributes
    ----------
    points : int
        Nodes per side of the periodic grid (even), solved and stored.
    nu : float
        Viscosity.
    t_end : float
        Final time.
    frames : int
        Stored frames, ``t = 0`` and ``t_end`` included.
    terms : int
        Sines in the initial condition.
    wavenumbers : int
        Largest integer wavenumber per axis of the sines.
    amplitude : float
        ``max |u0|`` after rescaling.
    """

    points: int = 192
    nu: float = 0.004
    t_end: float = 1.0
    frames: int = 31
    terms: int = 6
    wavenumbers: int = 3
    amplitude: float = 1.0

    def __post_init__(self):
        if self.points < 8 or self.points % 2:
            raise ValueError(f"`points` must be an even number >= 8, got {self.points}")
        if self.nu <= 0 or self.t_end <= 0 or self.amplitude <= 0:
            raise ValueError("`nu`, `t_end` and `amplitude` must be positive")
        if self.frames < 2 or self.terms < 1 or self.wavenumbers < 1:
            raise ValueError("need frames >= 2, terms >= 1, wavenumbers >= 1")


class Burgers2DProblem(BatchedProblem):
    name = "burgers2d"
    Parameters = Burgers2DParameters
    description = "u_t + u (u_x + u_y) = nu Laplacian u, periodic; pseudo-spectral IF-RK4 (MM-PDE)"
    batch_size = 16
    runs_on_device = True

    def layout(self, params: Burgers2DParameters) -> Layout:
        x = np.arange(params.points) / params.points
        return Layout(
            fields=[FieldSpec("u", ("t", "x", "y"), "output", "1", "trajectory u(t, x, y)")],
            coords={"t": np.linspace(0.0, params.t_end, params.frames), "x": x, "y": x.copy()},
            scalars={"nu": "1", "dt": "s"},
        )

    def sample_batch(self, params: Burgers2DParameters, solver, rngs, *, device=None):
        # The solver's substeps follow the batch's max |u0|, which is `amplitude` for every
        # sample (each is rescaled to it): a sample does not depend on its batch.
        u0 = torch.tensor(np.stack([
            burgers2d_initial_condition(params.points, rng, terms=params.terms,
                                        wavenumbers=params.wavenumbers, amplitude=params.amplitude)
            for rng in rngs]), device=device)
        u = solve_burgers2d(u0, nu=params.nu, t_end=params.t_end, frames=params.frames).cpu().numpy()
        dt = params.t_end / (params.frames - 1)
        return [({"u": u[i]}, {"nu": params.nu, "dt": dt}) for i in range(len(rngs))]


PROBLEMS: dict[str, Problem] = {
    problem.name: problem for problem in (DarcyProblem(), PoissonProblem(), AntiderivativeProblem(),
                                      DiffusionSorptionProblem(),
                                      NavierStokes2DProblem(),
                                      KuramotoSivashinskyProblem(),
                                      Burgers2DProblem())
}

