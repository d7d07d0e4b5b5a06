"""Training and evaluating the DCDM network (Kaneda et al., ICML 2023) with the one Trainer.

Training data are unit right-hand sides ``b`` (Ritz-vector combinations, :mod:`pdekit.data.ritz`);
the loss is the unsupervised, scale-invariant Eq. (8) (:func:`pdekit.models.dcdm.dcdm_loss`) with
the dataset's own Poisson matrix; the best checkpoint is the one with the lowest test loss.
``pdekit evaluate`` solves the systems of a dataset (a Poisson dataset's ``f``, or the test
vectors ``b``) with :func:`pdekit.linalg.dcdm` and with plain CG and reports the iterations.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch

from pdekit.classical import poisson
from pdekit.linalg import cg, dcdm
from pdekit.models.dcdm import LearnedPreconditioner, dcdm_loss
from pdekit.train.evaluate import save_figure
from pdekit.train.task import Task, register_task

__all__ = ["DCDMTask", "RightHandSides"]


def _recipe_parameters(dataset) -> dict:
    try:
        return dataset.info["manifest"]["recipe"]["parameters"]
    except (AttributeError, KeyError):
        raise ValueError("DCDMTask: the dataset must be a pdekit dataset of a Poisson-type recipe "
                         "(its `shape` and `bc` define the matrix)") from None


def _bc(value):
    return tuple(tuple(b) if isinstance(b, list) else b for b in value) if isinstance(value, list) else value


class RightHandSides:
    """The right-hand sides ``b`` of a dataset (and its solid masks), preloaded; batches are
    ``(b,)`` or ``(b, solid)``."""

    def __init__(self, dataset, field: str = "b"):
        if len(dataset) == 0:
            raise ValueError("RightHandSides: the dataset is empty")
        if field not in dataset.fields:
            raise ValueError(f"RightHandSides: the dataset has no field {field!r} (fields: {dataset.fields})")
        loader = torch.utils.data.DataLoader(dataset, batch_size=256)
        bs, solids = [], []
        for item in loader:
            bs.append(item[field].float())
            if "solid" in item:
                solids.append(item["solid"].bool())
        self.b = torch.cat(bs)
        self.b = self.b / torch.linalg.vector_norm(self.b.flatten(1), dim=1).clamp_min(1e-30).reshape(
            -1, *([1] * (self.b.ndim - 1)))
        self.solid = torch.cat(solids) if solids else None

    def __len__(self) -> int:
        return len(self.b)

    def batches(self, batch_size: int, order: torch.Tensor | None = None, rank: int = 0, world: int = 1):
        order = torch.arange(len(self)) if order is None else order
        for i in range(0, len(order), batch_size):
            index = order[i:i + batch_size][rank::world]
            if len(index) == 0:
                continue
            yield (self.b[index],) if self.solid is None else (self.b[index], self.solid[index])


@register_task("dcdm")
class DCDMTask(Task):
    """The DCDM network's training objective and evaluation.

    Parameters
    ----------
    rtol : float
        Tolerance of the solves in :meth:`report`.
    depth : int
        A-orthogonalisation depth of :func:`pdekit.linalg.dcdm` in :meth:`report`.
    max_samples : int
        Systems solved by :meth:`report` (the first ones of the dataset).
    maxiter : int
        Iteration limit of those solves.
    """

    select = "test_loss"

    def __init__(self, rtol: float = 1e-4, depth: int = 2, max_samples: int = 8, maxiter: int = 2000):
        self.rtol, self.depth, self.max_samples, self.maxiter = rtol, depth, max_samples, maxiter
        self._operators: dict = {}
        self._params: dict | None = None

    # -- the matrix of a dataset -----------------------------------------------------------
    def operator(self, solid: torch.Tensor | None, shape, device, dtype):
        """The dataset's Poisson operator with ``solid`` cells (cached)."""
        mask_key = None if solid is None else hash(solid.cpu().numpy().tobytes())
        key = (tuple(shape), mask_key, str(device), dtype)
        if key not in self._operators:
            if len(self._operators) > 64:
                self._operators.clear()
            bc = _bc(self._params["bc"]) if self._params else "dirichlet"
            mask = None if solid is None or not bool(solid.any()) else solid.cpu().numpy()
            self._operators[key] = poisson.operator(tuple(shape), bc=bc, solid=mask, dtype=dtype,
                                                    device=device)
        return self._operators[key]

    # -- training ----------------------------------------------------------------------------
    def make_batches(self, dataset, *, inputs, outputs, settings) -> RightHandSides:
        self._params = _recipe_parameters(dataset)
        return RightHandSides(dataset, "b" if "b" in dataset.fields else "f")

    def wrap_model(self, model, batches, dataset, settings):
        if settings.normalization != "none":
            raise ValueError("DCDMTask: set `normalization = \"none\"` (the loss is scale-invariant)")
        return model

    def loss(self, model, batch, settings) -> torch.Tensor:
        b = batch[0]
        solid = batch[1] if len(batch) > 1 else None
        q = model(b, solid).float()
        if solid is None or bool((solid == solid[:1]).all()):
            A = self.operator(None if solid is None else solid[0], b.shape[1:], b.device, torch.float32)
            return dcdm_loss(A.apply_functional, b, q)
        losses = []
        for i in range(len(b)):
            A = self.operator(solid[i], b.shape[1:], b.device, torch.float32)
            losses.append(dcdm_loss(A.apply_functional, b[i:i + 1], q[i:i + 1]))
        return torch.cat(losses)

    @torch.no_grad()
    def evaluate(self, model, batches, *, device, settings) -> dict[str, float]:
        model.eval()
        losses = [self.loss(model, tuple(t.to(device) for t in batch), settings)
                  for batch in batches.batches(max(settings.batch_size, 16))]
        model.train()
        losses = torch.cat(losses)
        return {"test_loss": float(losses.mean()),
                "test_loss_std": float(losses.std()) if len(losses) > 1 else 0.0}

    # -- `pdekit evaluate` -------------------------------------------------------------------
    def _systems(self, dataset):
        self._params = _recipe_parameters(dataset)
        rhs = "f" if "f" in dataset.fields else "b"
        for i in range(min(self.max_samples, len(dataset))):
            item = dataset[i]
            solid = item["solid"].bool() if "solid" in item else None
            yield i, item[rhs].double(), solid, item.get("u")

    def report(self, model, dataset, *, device="cpu", metadata=None) -> dict:
        """DCDM (with the network) against plain CG on the dataset's first systems: iterations
        to ``rtol``, wall time, and (on a dataset with solutions ``u``) the relative L2 error."""
        M = LearnedPreconditioner(model.to(device))
        rows = []
        for i, b, solid, u in self._systems(dataset):
            A = self.operator(solid, b.shape, device, torch.float64)
            b = b.to(device)
            started = time.perf_counter()
            learned = dcdm(A, b, M, rtol=self.rtol, depth=self.depth, maxiter=self.maxiter)
            seconds = time.perf_counter() - started
            plain = cg(A, b, rtol=self.rtol, maxiter=self.maxiter * 10)
            row = {"sample": i, "dcdm_iterations": learned.iterations,
                   "dcdm_converged": bool(learned.converged), "dcdm_seconds": seconds,
                   "cg_iterations": plain.iterations, "cg_seconds": plain.wall_time,
                   "solid_fraction": 0.0 if solid is None else float(solid.double().mean())}
            if u is not None:
                u = u.double().to(device)
                error = torch.linalg.vector_norm(learned.x - u) / torch.linalg.vector_norm(u)
                row["relative_l2"] = float(error)
            rows.append(row)
        keys = ("dcdm_iterations", "cg_iterations", "dcdm_seconds", "cg_seconds", "solid_fraction")
        metrics = {key: float(np.mean([r[key] for r in rows])) for key in keys}
        metrics["iteration_ratio"] = metrics["cg_iterations"] / metrics["dcdm_iterations"]
        metrics["converged_fraction"] = float(np.mean([r["dcdm_converged"] for r in rows]))
        metrics["samples"] = len(rows)
        metrics["rtol"] = self.rtol
        if rows and "relative_l2" in rows[0]:
            metrics["relative_l2"] = float(np.mean([r["relative_l2"] for r in rows]))
        return {"metrics": metrics, "per_sample": rows}

    def summary(self, result: dict) -> str:
        m = result["metrics"]
        line = (f"DCDM {m['dcdm_iterations']:.1f} iterations to rtol {m['rtol']:g} against CG "
                f"{m['cg_iterations']:.1f} ({m['iteration_ratio']:.1f}x fewer), "
                f"{m['converged_fraction']:.0%} converged")
        if "relative_l2" in m:
            line += f", relative L2 to the stored solution {m['relative_l2']:.2e}"
        return line

    def plot(self, model, dataset, path: str | os.PathLike, *, device="cpu", metadata=None) -> Path:
        """Residual against iteration for the dataset's first system: DCDM and CG."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        _, b, solid, _ = next(self._systems(dataset))
        A = self.operator(solid, b.shape, device, torch.float64)
        b = b.to(device)
        M = LearnedPreconditioner(model.to(device))
        fig, ax = plt.subplots(figsize=(6, 4))
        for name, result in (("DCDM", dcdm(A, b, M, rtol=self.rtol, depth=self.depth, maxiter=self.maxiter)),
                             ("CG", cg(A, b, rtol=self.rtol, maxiter=self.maxiter * 10))):
            norms = result.residual_norms.double()
            ax.semilogy(norms / norms[0], label=f"{name} ({result.iterations} iterations)")
        ax.set(xlabel="iteration", ylabel="relative residual")
        ax.legend()
        return save_figure(fig, path, title=f"DCDM vs CG, grid {tuple(b.shape)}", dpi=100)
