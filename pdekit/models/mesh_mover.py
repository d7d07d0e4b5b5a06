"""The data-free mesh mover (DMM) of Hu, Wang, Ma, "Better Neural PDE Solvers Through Data-Free
Mesh Movers" (ICLR 2024, section 3): a network from a solution to a mesh, trained on the
Monge-Ampere equation alone (no mesh data).

The network maps a solution ``u`` on the ``n x n`` grid and computational coordinates ``xi`` in
``[0, 1]^2`` to a potential ``phi(u, xi)`` (DeepONet-like: a CNN branch over ``u``, an MLP trunk
over ``xi``, an MLP head over their concatenation); the moved node is ``x = xi + grad phi``,
with ``grad phi`` and ``Hess phi`` by automatic differentiation. Training minimises (eq. 5)

    ``mean (M(xi + grad phi) det(I + Hess phi) / theta - 1)^2``  (collocation points ~ M)
    ``+ w_b mean (d phi / d n)^2`` on the walls  (nodes slide along the walls)
    ``+ w_c mean (min(0, 1 + phi_xx)^2 + min(0, 1 + phi_yy)^2)``  (convexity: no folding)
    ``+ 1e-3 (mean phi)^2``  (``phi`` is defined up to a constant; this pins it)

(:func:`mesh_mover_loss`; the monitor ``M`` is
:func:`pdekit.classical.moving_mesh.gradient_monitor` of ``u``). Activations are ``tanh`` so that
``phi`` is smooth. The input is standardised per sample (the monitor does not depend on the
scale of ``u``). :meth:`DataFreeMeshMover.move` returns the nodes with the boundary nodes
projected exactly onto their walls.

Beyond the paper (``basis = K``): ``phi`` on a fixed ``K x K`` cosine basis scaled by the
inverse Laplacian eigenvalues, its coefficients from a linear layer on the encoder's features,
or (``branch = "field"``) from the cosine transform of a field ``f = x + CNN(x)`` computed by a
fully convolutional network at the grid's resolution from ``x = theta / M - 1``, so that
``Laplacian phi = f`` starts at the linearised Monge-Ampere equation. The walls' zero normal
derivative then holds exactly and ``move`` sums ``grad phi`` in closed form.
"""

from __future__ import annotations

import torch
from torch import nn

from pdekit.classical.moving_mesh import gradient_monitor, interpolate_grid, uniform_mesh
from pdekit.models.registry import register_model

__all__ = ["DataFreeMeshMover", "cosine_coefficients", "mesh_mover_loss", "monge_ampere_residual",
           "monitor_mean", "potential_derivatives"]


def _mlp(widths: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(widths) - 1):
        layers.append(nn.Linear(widths[i], widths[i + 1]))
        if i < len(widths) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


@register_model("mesh-mover")
class DataFreeMeshMover(nn.Module):
    """The DMM network ``phi(u, xi)`` (Hu et al. 2024, section 3.2 and appendix: branch 4
    conv 5x5 + tanh then a linear layer to 512, trunk ``[2, 32, 512]``, head ``[1024, 512, 1]``).

    Parameters
    ----------
    size : int
        Grid points per side of the input solution.
    channels : list of int
        Channels of the branch's convolutions (stride 2 each).
    width : int
        Branch and trunk output width (the head's input is ``2 * width``).
    trunk : list of int
        Hidden widths of the trunk MLP (input 2, output ``width``).
    head : list of int
        Hidden widths of the head MLP (output 1).
    frequencies : int
        0: the trunk sees ``xi`` (the paper). ``K > 0``: it sees ``cos(pi k xi_d)``,
        ``k = 1..K`` (an invertible embedding of ``[0, 1]``), so every ``phi`` has zero normal
        derivative on the walls exactly and the trunk reaches sharp features sooner.
    alpha : float
        The monitor's ``alpha`` (:func:`~pdekit.classical.moving_mesh.gradient_monitor`), kept
        with the model so that losses and evaluation use the monitor it was trained for.
    basis : int
        0: the paper's concatenation head. ``K > 0``: a product (DeepONet) head over a fixed
        cosine trunk, ``phi = sum_{k, l < K, (k, l) != 0} c_kl(u) cos(pi k xi_1) cos(pi l xi_2)
        / (pi^2 (k^2 + l^2))``, the coefficients ``c`` a linear layer on the branch features
        (zero at initialisation: the identity map). The scaling by the inverse Laplacian's
        eigenvalues makes ``c`` the cosine coefficients of ``-Laplacian phi``, so that Adam's
        steps act on the Hessian, not on ``phi``; the walls' zero normal derivative holds
        exactly. The linear layer also sees the ``K x K`` cosine coefficients of the branch
        input (with ``branch_input = "monitor"`` the linearised solution is then a linear
        function of the features, the CNN adding the nonlinear part). ``trunk``, ``head`` and
        ``frequencies`` are then unused.
    branch_input : str
        What the branch CNN sees: ``"solution"`` (the paper: ``u`` standardised per sample) or
        ``"monitor"`` (``theta / M - 1``, the right-hand side of the Monge-Ampere equation
        linearised at the identity, ``Laplacian phi = theta / M - 1``; the map depends on
        ``u`` only through ``M``).
    branch : str
        ``"encoder"`` (the paper): convolutions of stride 2 then a linear layer to ``width``
        features. ``"field"`` (our addition; needs ``basis >= 2`` and ``branch_input =
        "monitor"``): a fully convolutional network at the grid's resolution (3x3 convolutions
        with ``channels`` channels, dilations 1, 1, 2, 4, 8, 1, 2, ..., GELU, reflected padding)
        maps the branch input ``x = theta / M - 1`` to a field ``f = x + CNN(x)``, and ``phi``
        solves ``Laplacian phi = f`` on the ``K x K`` cosine modes with zero normal derivative
        (its coefficients are ``f``'s cosine coefficients over ``-pi^2 (k^2 + l^2)``). It starts
        at the linearised Monge-Ampere map (the CNN's last layer is zero) and, being
        convolutional, learns a local correction shared by every position; ``width``,
        ``trunk``, ``head`` and ``frequencies`` are unused.

    Shapes:
        ``forward(u (B, n, n), xi (B, P, 2)) -> phi (B, P)``;
        ``move(u (B, n, n)) -> mesh (B, n, n, 2)``.
    """

    def __init__(self, size: int = 48, channels: list[int] | None = None, width: int = 512,
                 trunk: list[int] | None = None, head: list[int] | None = None, frequencies: int = 0,
                 alpha: float = 0.01, basis: int = 0, branch_input: str = "solution",
                 branch: str = "encoder"):
        super().__init__()
        if branch_input not in ("solution", "monitor"):
            raise ValueError(f"DataFreeMeshMover: branch_input must be 'solution' or 'monitor', "
                             f"got {branch_input!r}")
        if branch not in ("encoder", "field"):
            raise ValueError(f"DataFreeMeshMover: branch must be 'encoder' or 'field', got {branch!r}")
        if branch == "field" and (basis < 2 or branch_input != "monitor"):
            raise ValueError("DataFreeMeshMover: branch='field' needs basis >= 2 and "
                             f"branch_input='monitor', got basis={basis}, branch_input={branch_input!r}")
        channels = [16, 32, 32, 32] if channels is None else list(channels)
        trunk = [32] if trunk is None else list(trunk)
        head = [512] if head is None else list(head)
        self.size, self.alpha, self.frequencies = size, alpha, frequencies
        self.basis, self.branch_input, self.branch_kind = basis, branch_input, branch
        if basis:
            self.register_buffer("wavenumbers", torch.arange(basis, dtype=torch.float32))
            # checkpoints written before the scale was computed in the working dtype hold it
            self._register_load_state_dict_pre_hook(_drop_legacy_basis_scale)
        if branch == "field":
            self.field = _field_network(channels)
            return
        convs: list[nn.Module] = []
        c_in, s = 1, size
        for c in channels:
            convs += [nn.Conv2d(c_in, c, 5, stride=2, padding=2), nn.Tanh()]
            c_in, s = c, (s + 1) // 2
        self.branch = nn.Sequential(*convs, nn.Flatten(), nn.Linear(c_in * s * s, width))
        if basis:
            self.coefficients = nn.Linear(width + basis * basis, basis * basis - 1)
            with torch.no_grad():  # the identity map
                self.coefficients.weight.zero_()
                self.coefficients.bias.zero_()
        else:
            self.trunk = _mlp([2 * frequencies if frequencies else 2, *trunk, width])
            self.head = _mlp([2 * width, *head, 1])
            # start from the identity map: the last layer's output is scaled down
            with torch.no_grad():
                self.head[-1].weight.mul_(0.01)
                self.head[-1].bias.zero_()

    def encode(self, u: torch.Tensor) -> torch.Tensor:
        """The branch features of ``u (B, n, n)``: ``(B, width)`` (``basis = K``: with the
        ``K x K`` cosine coefficients of the input, ``(B, width + K^2)``; ``branch = "field"``:
        the ``K^2 - 1`` cosine coefficients of ``-f``, ``(B, K^2 - 1)``)."""
        if u.ndim != 3 or u.shape[-1] != self.size or u.shape[-2] != self.size:
            raise ValueError(f"DataFreeMeshMover: `u` must be (batch, {self.size}, {self.size}), "
                             f"got {tuple(u.shape)}")
        if self.branch_input == "monitor":
            monitor = gradient_monitor(u, alpha=self.alpha)
            x = monitor_mean(monitor)[:, None, None] / monitor - 1
        else:
            mean = u.mean(dim=(1, 2), keepdim=True)
            std = u.std(dim=(1, 2), keepdim=True).clamp_min(1e-8)
            x = (u - mean) / std
        if self.branch_kind == "field":
            f = x + self.field(x[:, None])[:, 0]
            return -cosine_coefficients(f, self.basis, normalized=True).flatten(1)[:, 1:]
        features = self.branch(x[:, None])
        if not self.basis:
            return features
        spectrum = cosine_coefficients(x, self.basis).flatten(1)
        return torch.cat((features, spectrum), dim=-1)

    def basis_coefficients(self, features: torch.Tensor) -> torch.Tensor:
        """``phi``'s coefficients ``(B, K, K)`` on ``cos(pi k xi_1) cos(pi l xi_2)`` from the
        features (``basis = K`` only; the ``(0, 0)`` gauge coefficient is zero)."""
        coef = features if self.branch_kind == "field" else self.coefficients(features)
        k = self.wavenumbers.to(coef.dtype)
        scale = 1.0 / (torch.pi**2 * (k[:, None] ** 2 + k[None, :] ** 2))  # inverse eigenvalues
        coef = coef * scale.flatten()[1:]  # (0, 0) dropped: the gauge
        coef = torch.cat((torch.zeros_like(coef[:, :1]), coef), dim=1)
        return coef.reshape(-1, self.basis, self.basis)

    def potential(self, features: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
        """``phi`` at ``xi (B, P, 2)`` from branch features ``(B, width)``: ``(B, P)``."""
        if self.basis:
            coef = self.basis_coefficients(features)
            cx = torch.cos(torch.pi * xi[..., 0, None] * self.wavenumbers)  # (B, P, K)
            cy = torch.cos(torch.pi * xi[..., 1, None] * self.wavenumbers)
            return (torch.bmm(cx, coef) * cy).sum(-1)  # separable: no (B, P, K^2) tensor
        if self.frequencies:
            k = torch.arange(1, self.frequencies + 1, dtype=xi.dtype, device=xi.device)
            xi = torch.cos(torch.pi * xi[..., None] * k).flatten(-2)
        t = self.trunk(xi)
        f = features[:, None, :].expand(-1, xi.shape[1], -1)
        return self.head(torch.cat((f, t), dim=-1))[..., 0]

    def forward(self, u: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
        return self.potential(self.encode(u), xi)

    def move(self, u: torch.Tensor, n: int | None = None, *, create_graph: bool = False) -> torch.Tensor:
        """The moved ``n x n`` mesh (default ``n = size``) of each solution: ``(B, n, n, 2)``,
        boundary nodes projected onto their walls and every node clamped into the square."""
        n = self.size if n is None else n
        xi = uniform_mesh(n, dtype=u.dtype, device=u.device).reshape(1, -1, 2).expand(u.shape[0], -1, -1)
        if self.basis:  # grad phi on the nodes in closed form, separably: O(n^2 K) per mesh
            with torch.set_grad_enabled(create_graph or torch.is_grad_enabled()):
                coef = self.basis_coefficients(self.encode(u))
                s = torch.linspace(0.0, 1.0, n, dtype=coef.dtype, device=coef.device)
                arg = torch.pi * s[:, None] * self.wavenumbers.to(coef.dtype)
                cos, dsin = torch.cos(arg), -torch.pi * self.wavenumbers.to(coef.dtype) * torch.sin(arg)
                gx = torch.einsum("ik,bkl,jl->bij", dsin, coef, cos)
                gy = torch.einsum("ik,bkl,jl->bij", cos, coef, dsin)
                grad = torch.stack((gx, gy), dim=-1).reshape(u.shape[0], -1, 2).to(u.dtype)
        else:
            with torch.enable_grad():
                _, grad, _ = potential_derivatives(self, u, xi, hessian=False, create_graph=create_graph)
        x = (xi + grad).reshape(u.shape[0], n, n, 2).clamp(0.0, 1.0)
        if not create_graph:
            x = x.detach()
        x = x.clone()
        x[:, 0, :, 0], x[:, -1, :, 0], x[:, :, 0, 1], x[:, :, -1, 1] = 0.0, 1.0, 0.0, 1.0
        return x


def _drop_legacy_basis_scale(state_dict, prefix, *args) -> None:
    state_dict.pop(prefix + "basis_scale", None)


def _field_network(channels: list[int]) -> nn.Sequential:
    """The ``branch = "field"`` CNN: 3x3 convolutions at full resolution with ``channels``
    channels (dilations 1, then 1, 2, 4, 8 repeating), GELU, reflected padding (the even
    extension of the Neumann walls), and a last convolution to one channel, zero at
    initialisation."""
    layers: list[nn.Module] = []
    c_in = 1
    for j, c in enumerate(channels):
        d = 1 if j == 0 else 2 ** ((j - 1) % 4)
        layers += [nn.Conv2d(c_in, c, 3, padding=d, dilation=d, padding_mode="reflect"), nn.GELU()]
        c_in = c
    last = nn.Conv2d(c_in, 1, 3, padding=1, padding_mode="reflect")
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
    return nn.Sequential(*layers, last)


def cosine_coefficients(x: torch.Tensor, modes: int, *, normalized: bool = False) -> torch.Tensor:
    """Cosine coefficients ``(B, K, K)`` of node values ``x (B, n, n)`` on ``[0, 1]^2``:
    ``int x cos(pi k xi_1) cos(pi l xi_2)`` by the trapezoid rule, ``k, l < K``. With
    ``normalized``, divided by the modes' squared norms (1 for ``k = 0``, 1/2 otherwise, per
    axis), so that ``sum c_kl cos cos`` is the projection of ``x`` on the modes."""
    n = x.shape[-1]
    w = torch.full((n,), 1.0 / (n - 1), dtype=x.dtype, device=x.device)
    w[0] = w[-1] = 0.5 / (n - 1)
    grid = torch.linspace(0, 1, n, dtype=x.dtype, device=x.device)
    k = torch.arange(modes, dtype=x.dtype, device=x.device)
    c = torch.cos(torch.pi * grid[:, None] * k) * w[:, None]  # (n, K)
    if normalized:
        c = c / torch.where(k == 0, 1.0, 0.5)
    return torch.einsum("bij,ik,jl->bkl", x, c, c)


def monitor_mean(monitor: torch.Tensor) -> torch.Tensor:
    """``theta``: the mean of a monitor ``(B, m, m)`` on the nodes of ``[0, 1]^2`` by the
    trapezoid rule, ``(B,)``."""
    w = torch.ones(monitor.shape[-1], dtype=monitor.dtype, device=monitor.device)
    w[0] = w[-1] = 0.5
    return (monitor * w[:, None] * w[None, :]).sum(dim=(1, 2)) / w.sum() ** 2


def potential_derivatives(model: DataFreeMeshMover, u: torch.Tensor, xi: torch.Tensor, *,
                          hessian: bool = True, create_graph: bool = True):
    """``phi (B, P)``, ``grad phi (B, P, 2)`` and (if ``hessian``) ``Hess phi (B, P, 2, 2)`` at
    ``xi (B, P, 2)`` by automatic differentiation (double backward)."""
    xi = xi.detach().requires_grad_(True)
    phi = model(u, xi)
    (grad,) = torch.autograd.grad(phi.sum(), xi, create_graph=create_graph or hessian)
    if not hessian:
        return phi, grad, None
    rows = [torch.autograd.grad(grad[..., k].sum(), xi, create_graph=create_graph, retain_graph=True)[0]
            for k in range(2)]
    return phi, grad, torch.stack(rows, dim=-2)


def monge_ampere_residual(grad: torch.Tensor, hess: torch.Tensor, monitor: torch.Tensor,
                          theta: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
    """``M(xi + grad phi) det(I + Hess phi) / theta - 1`` at the points ``xi (B, P, 2)``
    (Hu et al. 2024, eq. 3), ``monitor (B, m, m)`` on the uniform nodes of ``[0, 1]^2``
    sampled bilinearly, ``theta (B,)``: ``(B, P)``."""
    det = (1 + hess[..., 0, 0]) * (1 + hess[..., 1, 1]) - hess[..., 0, 1] * hess[..., 1, 0]
    m = interpolate_grid(monitor, xi + grad)
    return m * det / theta[:, None] - 1


def _collocation(monitor: torch.Tensor, points: int, candidates: int) -> torch.Tensor:
    """``points`` collocation points per sample drawn with probability proportional to the
    monitor (among ``candidates`` uniform candidates; torch's global generator)."""
    batch = monitor.shape[0]
    cand = torch.rand(batch, candidates, 2, dtype=monitor.dtype, device=monitor.device)
    weights = interpolate_grid(monitor, cand)
    index = torch.multinomial(weights, points, replacement=False)
    return torch.gather(cand, 1, index[..., None].expand(-1, -1, 2))


def mesh_mover_loss(model: DataFreeMeshMover, u: torch.Tensor, *, points: int = 256,
                    boundary_points: int = 16, boundary_weight: float = 1000.0,
                    convexity_weight: float = 1.0) -> dict[str, torch.Tensor]:
    """The data-free loss of Hu et al. (2024, eq. 5) on solutions ``u (B, n, n)``.

    Returns per-sample ``(B,)`` terms ``{"loss", "residual", "boundary", "convexity"}``.
    """
    monitor = gradient_monitor(u, alpha=model.alpha)
    theta = monitor_mean(monitor)
    xi = _collocation(monitor, points, 8 * points)
    features = model.encode(u)

    def derivs(x, hessian):
        x = x.detach().requires_grad_(True)
        phi = model.potential(features, x)
        (g,) = torch.autograd.grad(phi.sum(), x, create_graph=True)
        if not hessian:
            return phi, g, None
        rows = [torch.autograd.grad(g[..., k].sum(), x, create_graph=True)[0] for k in range(2)]
        return phi, g, torch.stack(rows, dim=-2)

    phi, grad, hess = derivs(xi, True)
    residual = monge_ampere_residual(grad, hess, monitor, theta, xi).pow(2).mean(dim=1)
    convexity = (torch.clamp(1 + hess[..., 0, 0], max=0) ** 2
                 + torch.clamp(1 + hess[..., 1, 1], max=0) ** 2).mean(dim=1)
    s = torch.rand(u.shape[0], boundary_points, dtype=u.dtype, device=u.device)
    zero, one = torch.zeros_like(s), torch.ones_like(s)
    walls = torch.cat((torch.stack((zero, s), -1), torch.stack((one, s), -1),
                       torch.stack((s, zero), -1), torch.stack((s, one), -1)), dim=1)
    _, gb, _ = derivs(walls, False)
    normal = torch.cat((gb[:, : 2 * boundary_points, 0], gb[:, 2 * boundary_points :, 1]), dim=1)
    boundary = normal.pow(2).mean(dim=1)
    gauge = phi.mean(dim=1).pow(2)  # phi is defined up to a constant: pin its mean to zero
    loss = residual + boundary_weight * boundary + convexity_weight * convexity + 1e-3 * gauge
    return {"loss": loss, "residual": residual, "boundary": boundary, "convexity": convexity}
