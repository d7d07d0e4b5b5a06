"""Physics-informed hard constraints with a mixture of experts on diffusion-sorption
(Chalapathi et al., ICLR 2024): solve the PDE classically, train the soft-constraint FNO,
the single global hard constraint and the 4-expert MoE with the physics loss only, and score
them against the classical solution.

    python examples/hard_constraints.py            # a few minutes on a laptop CPU
    python examples/hard_constraints.py --quick    # seconds: a tiny grid, a few steps

The shipped checkpoints solvers/checkpoints/{hc-moe,soft}-diffsorp.pt were trained by the
recipes solvers/{hc-moe,hc,soft}-diffsorp.toml (`pdekit train ...`).
"""

import sys

import numpy as np
import torch

from pdekit.classical.diffusion_sorption import solve_diffusion_sorption
from pdekit.models import HardConstraintFNO, SoftConstraintFNO
from pdekit.models.hard_constraint import physics_loss


def main(quick: bool = False) -> dict[str, float]:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    nx, nt, t_end = (32, 11, 100.0) if quick else (128, 51, 500.0)
    steps = 15 if quick else 150
    backbone = dict(modes=(4, 4), width=16, layers=3, fc_dim=32, padding=4)

    # 1. Reference solutions (the classical implicit solver) for 8 training and 4 test initial values.
    rng = np.random.default_rng(0)
    u0_train, u0_test = rng.uniform(0, 0.2, 8), rng.uniform(0, 0.2, 4)
    test = solve_diffusion_sorption(u0_test, nx=nx, nt=nt, t_end=t_end, substeps=5).u
    test = torch.from_numpy(test).float()
    t = torch.linspace(0.0, t_end, nt, dtype=torch.float64)
    x = (torch.arange(nx, dtype=torch.float64) + 0.5) / nx
    train_u0 = torch.from_numpy(u0_train).float()[:, None].expand(8, nx).contiguous()

    # 2. Three models, the same FNO backbone, trained on the physics loss alone (no labels).
    models = {
        "soft constraint": SoftConstraintFNO(**backbone),
        "hard constraint": HardConstraintFNO(basis=8, experts=1, points=nx * nt // 2, **backbone),
        "hard MoE (4 experts)": HardConstraintFNO(basis=8, experts=4, points=nx * nt // 8, **backbone),
    }
    errors = {}
    for name, model in models.items():
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        for _ in range(steps):
            u0 = train_u0[torch.randint(0, 8, (2,))]
            u = model(u0, t, x)
            loss = physics_loss(model.physics, u, u0, t, x, getattr(model, "last_derivatives", None)).mean()
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
        model.eval()
        with torch.no_grad():
            pred = model(test[:, 0], t, x)
        errors[name] = float(((pred - test).flatten(1).norm(dim=1) / test.flatten(1).norm(dim=1)).mean())
        print(f"{name:22s} physics loss {loss.item():.3e}   relative L2 vs the classical solver "
              f"{errors[name]:.3f}")
    return errors


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
