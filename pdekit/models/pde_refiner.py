"""PDE-Refiner and the MSE-trained one-step baseline with the same modern U-Net backbone.

Lippe, Veeling, Perdikaris, Turner, Brandstetter, "PDE-Refiner: Achieving Accurate Long
Rollouts with Neural PDE Solvers" (NeurIPS 2023), section 3 and Algorithm 1, following the
reference code (PDEArena ``pdearena/models/pderefiner.py``) where it is more specific:

* the predicted quantity is the scaled change ``y = (u(t + dt) - u(t)) / difference_weight``
  (``difference_weight = 0.3``);
* the refinement is a DDPM (Ho et al. 2020) with ``K + 1`` timesteps, ``beta_k =
  sigma_min^((K - k) / K)`` for ``k = 0 .. K`` (``sigma_min = 4e-7`` used as a variance) and
  v-prediction (Salimans and Ho 2022): the network's target at level ``k`` is ``sqrt(abar_k) eps
  - sqrt(1 - abar_k) y``, ``abar_k = prod_{j<=k} (1 - beta_j)``. Level ``K`` has ``abar = 0``:
  the input is pure noise and the target ``-y``, plain regression (the paper's step 0). The
  noise standard deviations ``sqrt(1 - abar_k)`` for ``k = K .. 0`` are 1, 0.086, 7.4e-3,
  6.3e-4 for ``K = 3`` (:attr:`PDERefiner.noise_std`);
* sampling runs the DDPM posterior from ``k = K`` down to 0 (no noise added at the last step);
* the refinement index enters the U-Net as ``k * 1000 / K``.

The exponential moving average of the weights (decay 0.995) is the Trainer's ``ema_decay``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from pdekit.models.modern_unet import ModernUNet1d
from pdekit.models.registry import register_model

__all__ = ["OneStepUNet", "PDERefiner", "refiner_schedule"]


def refiner_schedule(refinement_steps: int, min_noise_std: float) -> list[float]:
    """``abar_k`` for ``k = 0 .. K`` of PDE-Refiner's schedule (``beta_k = sigma_min^((K-k)/K)``)."""
    K = refinement_steps
    betas = [min_noise_std ** ((K - k) / K) for k in range(K + 1)]
    abar, product = [], 1.0
    for beta in betas:
        product *= 1.0 - beta
        abar.append(product)
    return abar


def _check_inputs(name: str, u: torch.Tensor, history: int) -> None:
    if u.ndim != 3 or u.shape[1] != history:
        raise ValueError(f"{name}: `u` must have shape (batch, {history}, points), got {tuple(u.shape)}")


class _Stepper(nn.Module):
    """Shared parts: the backbone and the scaled-difference parametrisation."""

    history: int
    difference_weight: float
    network: ModernUNet1d

    def target_difference(self, u: torch.Tensor, u_next: torch.Tensor) -> torch.Tensor:
        """``y = (u_next - u[:, -1:]) / difference_weight``."""
        return (u_next - u[:, -1:]) / self.difference_weight

    def _step_values(self, batch: int, k, like: torch.Tensor) -> torch.Tensor:
        return torch.full((batch,), float(k), dtype=like.dtype, device=like.device)


@register_model("pde-refiner")
class PDERefiner(_Stepper):
    """PDE-Refiner: a one-step predictor refined in ``K`` denoising steps (see the module
    docstring for the schedule and the paper).

    Parameters
    ----------
    history : int
        States the model sees (PDE-Refiner's KS model: 1).
    scalars : int
        PDE scalars it is conditioned on (``dt, dx``; ``dt, dx, nu`` with varying viscosity).
    refinement_steps : int
        ``K``, the number of refinement steps after the first prediction.
    min_noise_std : float
        ``sigma_min`` of the schedule (used as a variance, as in the reference code).
    difference_weight : float
        Scale of the predicted change.
    hidden, widths, blocks : U-Net width and depth (:class:`~pdekit.models.modern_unet.ModernUNet1d`).

    Shapes: ``u (B, history, N)``, ``scalars (B, scalars)`` -> next state ``(B, 1, N)``.
    """

    def __init__(self, history: int = 1, scalars: int = 2, *, refinement_steps: int = 3,
                 min_noise_std: float = 4e-7, difference_weight: float = 0.3, hidden: int = 64,
                 widths: tuple = (64, 128, 256, 1024), blocks: int = 2):
        super().__init__()
        if refinement_steps < 1:
            raise ValueError(f"PDERefiner: `refinement_steps` must be >= 1, got {refinement_steps}")
        if not 0 < min_noise_std < 1:
            raise ValueError(f"PDERefiner: `min_noise_std` must lie in (0, 1), got {min_noise_std}")
        self.history, self.refinement_steps = history, refinement_steps
        self.difference_weight = difference_weight
        self.alphas_cumprod = refiner_schedule(refinement_steps, min_noise_std)
        self.network = ModernUNet1d(history + 1, 1, hidden=hidden, widths=tuple(widths), blocks=blocks,
                                    scalars=scalars, step_multiplier=1000.0 / refinement_steps)

    @property
    def noise_std(self) -> list[float]:
        """Standard deviation of the noise at each refinement step, in the order they run
        (``k = K .. 0``): ``sqrt(1 - abar_k)``."""
        return [math.sqrt(1.0 - a) for a in reversed(self.alphas_cumprod)]

    def denoise(self, u: torch.Tensor, y_noised: torch.Tensor, k: torch.Tensor,
                scalars: torch.Tensor | None) -> torch.Tensor:
        """The network's v-prediction at levels ``k`` (shape ``(B,)``)."""
        return self.network(torch.cat([u, y_noised], dim=1), k.to(u.dtype), scalars)

    def training_loss(self, u: torch.Tensor, u_next: torch.Tensor,
                      scalars: torch.Tensor | None = None) -> torch.Tensor:
        """Per-sample v-prediction MSE at a uniformly drawn level ``k in {0..K}`` (Algorithm 1)."""
        _check_inputs("PDERefiner", u, self.history)
        y = self.target_difference(u, u_next)
        k = torch.randint(0, self.refinement_steps + 1, (u.shape[0],), device=u.device)
        abar = torch.tensor(self.alphas_cumprod, dtype=u.dtype, device=u.device)[k].view(-1, 1, 1)
        noise = torch.randn_like(y)
        y_noised = abar.sqrt() * y + (1 - abar).sqrt() * noise
        target = abar.sqrt() * noise - (1 - abar).sqrt() * y
        pred = self.denoise(u, y_noised, k, scalars)
        return (pred - target).square().mean(dim=(1, 2))

    @torch.no_grad()
    def forward(self, u: torch.Tensor, scalars: torch.Tensor | None = None, *,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """The next state: start from ``N(0, 1)`` noise at ``k = K``, then DDPM posterior steps
        down to ``k = 0`` (diffusers' ``DDPMScheduler.step``, fixed-small variance)."""
        _check_inputs("PDERefiner", u, self.history)
        shape = (u.shape[0], 1, u.shape[-1])
        y = torch.randn(shape, dtype=u.dtype, device=u.device, generator=generator)
        abar = self.alphas_cumprod
        for k in range(self.refinement_steps, -1, -1):
            v = self.denoise(u, y, self._step_values(u.shape[0], k, u), scalars)
            a_t = abar[k]
            a_prev = abar[k - 1] if k > 0 else 1.0
            alpha_t = a_t / a_prev
            clean = math.sqrt(a_t) * y - math.sqrt(1 - a_t) * v
            y = (math.sqrt(a_prev) * (1 - alpha_t) / (1 - a_t)) * clean \
                + (math.sqrt(alpha_t) * (1 - a_prev) / (1 - a_t)) * y
            if k > 0:
                variance = max((1 - a_prev) / (1 - a_t) * (1 - alpha_t), 1e-20)
                noise = torch.randn(shape, dtype=u.dtype, device=u.device, generator=generator)
                y = y + math.sqrt(variance) * noise
        return u[:, -1:] + self.difference_weight * y


@register_model("unet-onestep")
class OneStepUNet(_Stepper):
    """The MSE-trained one-step baseline of PDE-Refiner: the same modern U-Net predicting the
    scaled change ``(u(t + dt) - u(t)) / difference_weight`` directly (Lippe et al. 2023,
    section 4.1, "MSE training").

    Shapes: ``u (B, history, N)``, ``scalars (B, scalars)`` -> next state ``(B, 1, N)``.
    """

    def __init__(self, history: int = 1, scalars: int = 2, *, difference_weight: float = 0.3,
                 hidden: int = 64, widths: tuple = (64, 128, 256, 1024), blocks: int = 2):
        super().__init__()
        self.history, self.difference_weight = history, difference_weight
        self.network = ModernUNet1d(history, 1, hidden=hidden, widths=tuple(widths), blocks=blocks,
                                    scalars=scalars)

    def training_loss(self, u: torch.Tensor, u_next: torch.Tensor,
                      scalars: torch.Tensor | None = None) -> torch.Tensor:
        """Per-sample MSE of the scaled change."""
        _check_inputs("OneStepUNet", u, self.history)
        y = self.target_difference(u, u_next)
        pred = self.network(u, self._step_values(u.shape[0], 0, u), scalars)
        return (pred - y).square().mean(dim=(1, 2))

    def forward(self, u: torch.Tensor, scalars: torch.Tensor | None = None, *,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """The next state (``generator`` is accepted for the refiner's signature and unused)."""
        _check_inputs("OneStepUNet", u, self.history)
        pred = self.network(u, self._step_values(u.shape[0], 0, u), scalars)
        return u[:, -1:] + self.difference_weight * pred
