"""FNO and the physics-informed hard-constraint models (pdekit.models.fno,
pdekit.models.hard_constraint): shapes, backward, one expert = the global layer, each expert =
its own least-squares problem, the closed-form Jacobian, the end-to-end implicit gradient."""

import pytest
import torch
from torch.func import jacfwd, vmap

from pdekit.models import build_model
from pdekit.models.fno import FNO2d, FNO3d, SpectralConv
from pdekit.models.hard_constraint import (
    DiffusionSorptionPhysics,
    HardConstraintFNO,
    SoftConstraintFNO,
    physics_loss,
)
from pdekit.models.least_squares import levenberg_marquardt

NT, NX = 9, 32
SMALL = dict(modes=(3, 3), width=8, layers=2, fc_dim=16, padding=2)


def _grid(dtype=torch.float32):
    t = torch.linspace(0.0, 40.0, NT, dtype=torch.float64)
    x = (torch.arange(NX, dtype=torch.float64) + 0.5) / NX
    u0 = torch.tensor([[0.05], [0.15]], dtype=dtype).expand(2, NX).contiguous()
    return u0, t, x


def _unused(model, *inputs):
    model.zero_grad()
    out = model(*inputs)
    out.square().mean().backward()
    return out, [n for n, p in model.named_parameters() if p.grad is None]


def test_fno_shapes_and_backward():
    torch.manual_seed(0)
    out, unused = _unused(FNO2d(3, 2, modes=(3, 4), width=8, padding=2), torch.randn(2, 3, 12, 10))
    assert out.shape == (2, 2, 12, 10) and unused == []
    out, unused = _unused(FNO3d(2, 1, modes=(2, 2, 2), width=6), torch.randn(1, 2, 6, 8, 5))
    assert out.shape == (1, 1, 6, 8, 5) and unused == []
    with pytest.raises(ValueError, match="modes"):
        FNO2d(modes=(3, 3, 3))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_spectral_conv_is_a_truncated_fourier_multiplier(dtype):
    torch.manual_seed(1)
    conv = SpectralConv(1, 1, (2, 2)).to(dtype)
    x = torch.randn(1, 1, 8, 8, dtype=dtype)
    out = conv(x)
    assert out.dtype == dtype
    # a mode above the kept ones is annihilated
    k = torch.arange(8, dtype=dtype)
    high = torch.cos(2 * torch.pi * 3 * k / 8)[None, None, :, None] * torch.ones(1, 1, 1, 8, dtype=dtype)
    torch.testing.assert_close(conv(high), torch.zeros_like(high), atol=1e-5, rtol=0)
    # linearity
    torch.testing.assert_close(conv(2 * x + high), 2 * out, atol=1e-5, rtol=1e-5)


def test_models_are_registered_and_train_every_parameter():
    torch.manual_seed(2)
    u0, t, x = _grid()
    for model in (build_model("pi-sc", **SMALL), build_model("pi-hc", basis=4, points=60, **SMALL),
                  build_model("pi-hc", basis=4, experts=4, points=20, **SMALL)):
        model.zero_grad()
        u = model(u0, t, x)
        assert u.shape == (2, NT, NX) and u.dtype == torch.float32
        physics_loss(model.physics, u, u0, t, x).mean().backward()
        assert [n for n, p in model.named_parameters() if p.grad is None] == []


def test_closed_form_jacobian_matches_autodiff():
    physics = DiffusionSorptionPhysics()
    g = torch.Generator().manual_seed(3)
    args = [torch.randn(2, 30, 5, generator=g, dtype=torch.float64) for _ in range(3)]
    args += [torch.randn(2, NX, 5, generator=g, dtype=torch.float64),
             torch.rand(2, NX, generator=g, dtype=torch.float64)]
    args += [torch.randn(2, NT - 1, 5, generator=g, dtype=torch.float64) for _ in range(3)]
    w = torch.rand(2, 5, generator=g, dtype=torch.float64)
    torch.testing.assert_close(vmap(physics.least_squares_jacobian)(w, *args),
                               vmap(jacfwd(physics.least_squares_residual))(w, *args))


def _manual_solve(model, u0, t, x, columns, points):
    """Solve one expert's problem by hand: the PDE rows at ``points`` (flat indices), the
    global IC and boundary rows; return u on ``columns``."""
    physics = model.physics
    b = model.basis_functions(u0, t, x).double()
    b_t, b_x, b_xx = physics.derivatives(b, t, x)
    at = lambda v: v.flatten(2)[:, :, points].transpose(1, 2)  # noqa: E731
    params = (at(b), at(b_t), at(b_xx), b[:, :, 0].transpose(1, 2), u0.double(),
              b[:, :, 1:, 0].transpose(1, 2), b[:, :, 1:, -1].transpose(1, 2),
              b_x[:, :, 1:, -1].transpose(1, 2))
    w = levenberg_marquardt(physics.least_squares_residual, torch.ones(2, model.basis, dtype=torch.float64),
                            params, maxiter=model.options["maxiter"], rtol=model.options["rtol"],
                            atol=model.options["atol"]).w
    return torch.einsum("bntx,bn->btx", b[..., columns], w)


def test_one_expert_is_the_global_layer_and_each_expert_solves_its_own_block():
    torch.manual_seed(4)
    u0, t, x = _grid()
    with torch.no_grad():
        single = HardConstraintFNO(basis=4, experts=1, points=80, **SMALL).eval()
        u = single(u0, t, x)
        index = single.sample_points(NT, NX, "cpu")[0]
        torch.testing.assert_close(u.double(), _manual_solve(single, u0, t, x, slice(None), index),
                                   rtol=1e-5, atol=1e-6)
        moe = HardConstraintFNO(basis=4, experts=4, points=30, **SMALL).eval()
        moe.load_state_dict(single.state_dict())
        u = moe(u0, t, x)
        index = moe.sample_points(NT, NX, "cpu")
        for k in range(4):
            columns = slice(k * NX // 4, (k + 1) * NX // 4)
            assert bool(((index[k] % NX >= columns.start) & (index[k] % NX < columns.stop)).all())
            torch.testing.assert_close(u[..., columns].double(),
                                       _manual_solve(moe, u0, t, x, columns, index[k]), rtol=1e-5, atol=1e-6)
        assert (moe.last_solve["iterations"].shape, moe.last_solve["gradient_norm"].shape) == ((2, 4), (2, 4))


def test_end_to_end_implicit_gradient_matches_finite_differences():
    torch.manual_seed(5)
    u0, t, x = _grid(torch.float64)
    model = HardConstraintFNO(basis=3, experts=2, points=40, rtol=1e-12, maxiter=200, **SMALL).double().eval()
    weight = torch.randn(2, NT, NX, dtype=torch.float64)
    (model(u0, t, x) * weight).sum().backward()
    p = model.fno.project[2].bias
    grad = p.grad[1].item()
    eps = 1e-5
    with torch.no_grad():
        p[1] += eps
        plus = (model(u0, t, x) * weight).sum().item()
        p[1] -= 2 * eps
        minus = (model(u0, t, x) * weight).sum().item()
    assert abs((plus - minus) / (2 * eps) - grad) <= 1e-4 * max(1.0, abs(grad))


def test_soft_model_and_bad_arguments():
    u0, t, x = _grid()
    assert SoftConstraintFNO(**SMALL)(u0, t, x).shape == (2, NT, NX)
    with pytest.raises(ValueError, match="experts"):
        HardConstraintFNO(basis=4, experts=3, **SMALL)(u0, t, x)
    with pytest.raises(ValueError, match="pde"):
        HardConstraintFNO(pde="burgers")


def test_navier_stokes_physics_residual_jacobian_and_3d_models():
    from pdekit.classical.navier_stokes import taylor_green_vorticity
    from pdekit.models.hard_constraint import (
        HardConstraintFNO3d,
        NavierStokesPhysics,
        SoftConstraintFNO3d,
        _inputs3d,
    )

    # the exact Taylor-Green solution has a residual of the time differencing only (O(dt^2))
    physics = NavierStokesPhysics(nu=1e-3)
    errors = []
    for nt in (11, 21):
        t = torch.linspace(0, 1, nt, dtype=torch.float64)
        w = torch.stack([taylor_green_vorticity(16, float(s), 1e-3) for s in t])[None]
        errors.append(float(physics.field_residuals(w, w[:, 0], t)["pde"].abs().max()))
    assert errors[1] < errors[0] / 1.8 and errors[1] < 1e-2  # one-sided (first-order) end rows
    g = torch.Generator().manual_seed(6)
    args = [torch.randn(2, 30, 5, generator=g, dtype=torch.float64) for _ in range(7)]
    args += [torch.randn(2, 16, 5, generator=g, dtype=torch.float64),
             torch.randn(2, 16, generator=g, dtype=torch.float64)]
    w = torch.randn(2, 5, generator=g, dtype=torch.float64)
    torch.testing.assert_close(vmap(physics.least_squares_jacobian)(w, *args),
                               vmap(jacfwd(physics.least_squares_residual))(w, *args))
    torch.manual_seed(7)
    small = dict(modes=(2, 2, 2), width=6, layers=2, fc_dim=8)
    w0, t = torch.randn(2, 8, 8), torch.linspace(0, 1, 5, dtype=torch.float64)
    models = (HardConstraintFNO3d(basis=4, experts=(2, 2), points=50, **small), SoftConstraintFNO3d(**small))
    for model in models:
        out = model(w0, t)
        assert out.shape == (2, 5, 8, 8)
        derivatives = getattr(model, "last_derivatives", None)
        physics_loss(model.physics, out, w0, t, None, derivatives).mean().backward()
        assert [n for n, p in model.named_parameters() if p.grad is None] == []
    # one expert: the layer is the direct least-squares solve over its points
    single = HardConstraintFNO3d(basis=4, experts=(1, 1), points=120, **small).eval()
    with torch.no_grad():
        out = single(w0, t)
        b = single.fno(_inputs3d(w0, t, single.time_scale)).double()
        d = single.physics.derivatives(b, t)
        index = single.sample_points(5, 8, "cpu")[0]
        at = lambda v: v.flatten(2)[:, :, index].transpose(1, 2)  # noqa: E731
        params = (at(b), *(at(v) for v in d), b[:, :, 0].flatten(2).transpose(1, 2), w0.double().flatten(1))
        start = torch.zeros(2, 4, dtype=torch.float64)
        sol = levenberg_marquardt(single.physics.least_squares_residual, start, params, maxiter=50, rtol=1e-6,
                                  atol=1e-12).w
        torch.testing.assert_close(out.double(), torch.einsum("bntxy,bn->btxy", b, sol), rtol=1e-5, atol=1e-6)
