"""The one training loop of pdekit: every learned solver is trained by :class:`Trainer`.

Plain PyTorch: optimiser and scheduler from :class:`TrainingSettings`, per-sample relative L2
(or MSE) loss on de-normalised fields, evaluation on the test split, tqdm progress, metrics
appended to ``metrics.jsonl``, self-describing ``best.pt`` / ``last.pt`` checkpoints, exact
resume after a kill, bf16 autocast on CUDA, gradient clipping, and data-parallel training
under ``torchrun`` (DDP; gloo on the CPU, NCCL on CUDA).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from pdekit.models.checkpoint import load_checkpoint, save_checkpoint
from pdekit.models.normalization import NormalizedModel
from pdekit.train import distributed
from pdekit.train.batches import FieldBatches, epoch_permutation
from pdekit.train.evaluate import per_sample_metrics
from pdekit.train.metrics import mse, relative_l2

__all__ = ["LOSSES", "Trainer", "TrainingSettings"]

LOSSES = {"relative_l2": relative_l2, "mse": mse}
_OPTIMIZERS = ("adam", "adamw", "sgd")
_SCHEDULERS = ("none", "step", "cosine", "onecycle")
_NORMALIZATIONS = ("none", "field", "pointwise")


@dataclass(frozen=True)
class TrainingSettings:
    """Settings of a training run (a recipe's ``[training]`` table).

    ``batch_size`` is the global batch: with several data-parallel processes each takes an
    equal share. ``scheduler`` steps once per epoch (``step``: ``step_size``, ``gamma``;
    ``cosine``: to 0 over ``epochs``) or per batch (``onecycle``, peak ``lr``).
    ``normalization`` is the Gaussian normalisation of inputs and outputs (``pointwise``: per
    grid point, as FNO/LSM; ``field``: one mean and std per field).
    """

    epochs: int = 100
    batch_size: int = 20
    loss: str = "relative_l2"
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    scheduler: str = "none"
    step_size: int = 100
    gamma: float = 0.5
    grad_clip: float = 0.0
    normalization: str = "pointwise"
    eval_every: int = 1
    checkpoint_every: int = 1
    amp: bool = True
    seed: int = 0
    preload: bool = True
    num_workers: int = 0

    def __post_init__(self):
        checks = [
            (self.epochs >= 1, "`epochs` must be >= 1"),
            (self.batch_size >= 1, "`batch_size` must be >= 1"),
            (self.loss in LOSSES, f"`loss` must be one of {sorted(LOSSES)}"),
            (self.optimizer in _OPTIMIZERS, f"`optimizer` must be one of {_OPTIMIZERS}"),
            (self.scheduler in _SCHEDULERS, f"`scheduler` must be one of {_SCHEDULERS}"),
            (self.normalization in _NORMALIZATIONS, f"`normalization` must be one of {_NORMALIZATIONS}"),
            (self.lr > 0, "`lr` must be > 0"),
            (self.weight_decay >= 0 and self.grad_clip >= 0, "`weight_decay` and `grad_clip` must be >= 0"),
            (self.eval_every >= 1 and self.checkpoint_every >= 1,
             "`eval_every` and `checkpoint_every` must be >= 1"),
            (self.step_size >= 1 and 0 < self.gamma <= 1, "`step_size` >= 1 and `gamma` in (0, 1]"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"TrainingSettings: {message}")


def _statistics(batches: FieldBatches, kind: str, dataset) -> dict[str, torch.Tensor] | None:
    """Normalisation statistics of the training pairs: per grid point, or per field."""
    if kind == "none":
        return None
    if batches.preload:
        moments = {"input": (batches.x.double().mean(0), batches.x.double().square().mean(0)),
                   "output": (batches.y.double().mean(0), batches.y.double().square().mean(0))}
    else:  # one streaming pass (the dataset's per-point statistics)
        stats = dataset.per_point_statistics(batches.inputs + batches.outputs)

        def stacked(names):
            mean = torch.stack([stats[n][0] for n in names])
            return mean, torch.stack([stats[n][1] for n in names]).square() + mean.square()

        moments = {"input": stacked(batches.inputs), "output": stacked(batches.outputs)}
    out = {}
    for prefix, (mean, square) in moments.items():
        if kind == "field":
            spatial = tuple(range(1, mean.ndim))
            mean, square = mean.mean(spatial, keepdim=True), square.mean(spatial, keepdim=True)
        out[f"{prefix}_mean"] = mean.float()
        out[f"{prefix}_std"] = (square - mean.square()).clamp_min(0).sqrt().float()
    return out


class Trainer:
    """Train a field-to-field model on a dataset and evaluate it on another.

    Parameters
    ----------
    model : torch.nn.Module
        A registered pdekit model taking ``(B, C_in, *grid)`` to ``(B, C_out, *grid)``.
    train, test : torch.utils.data.Dataset
        Datasets of ``{field: tensor}`` items (e.g. :func:`pdekit.data.open_dataset`);
        ``test`` may be None.
    settings : TrainingSettings, optional
        Or give its fields as keyword arguments (``epochs=50, lr=1e-3``).
    inputs, outputs : list of str, optional
        Fields stacked as input and target channels (default: the dataset's input and mask
        fields, and its output fields).
    out : path, optional
        Run folder for ``metrics.jsonl`` and ``best.pt`` / ``last.pt`` (nothing written if None).
    device : str
        ``"cpu"`` or ``"cuda"``; under ``torchrun`` each process takes its local GPU.
    resume : bool
        Continue from ``out/last.pt`` (same epoch, optimiser, scheduler and RNG state).
    metadata : dict, optional
        Stored in the checkpoints (e.g. the recipe and dataset path).
    progress : bool
        Show a tqdm bar (on the first process only).
    """

    def __init__(self, model: torch.nn.Module, train, test=None, settings: TrainingSettings | None = None, *,
                 inputs: list[str] | None = None, outputs: list[str] | None = None,
                 out: str | os.PathLike | None = None, device: str | torch.device = "cpu",
                 resume: bool = False, metadata: dict | None = None, progress: bool = True,
                 **overrides):
        if settings is None:
            settings = TrainingSettings(**overrides)
        elif overrides:
            settings = dataclasses.replace(settings, **overrides)
        self.settings = s = settings
        self.rank, self.world = distributed.setup(device)
        self.device = distributed.local_device(device)
        self.out = Path(out) if out is not None else None
        self.progress = progress and self.rank == 0
        inputs = list(inputs or [*_role(train, "input"), *_role(train, "mask")])
        outputs = list(outputs or _role(train, "output"))
        if not inputs or not outputs:
            raise ValueError("Trainer: name the `inputs` and `outputs` fields (the dataset does not say)")
        load = {"preload": s.preload, "num_workers": s.num_workers}
        self.train_batches = FieldBatches(train, inputs, outputs, **load)
        self.test_batches = FieldBatches(test, inputs, outputs, **load) if test is not None else None
        stats = _statistics(self.train_batches, s.normalization, train)
        self.model = (NormalizedModel(model, **stats) if stats is not None else model).to(self.device)
        self.parallel = distributed.wrap(self.model, self.device) if self.world > 1 else self.model
        self.optimizer = self._make_optimizer()
        self.steps_per_epoch = max(1, math.ceil(len(self.train_batches) / s.batch_size))
        self.scheduler = self._make_scheduler()
        self.loss_fn = LOSSES[s.loss]
        self.metadata = {"inputs": inputs, "outputs": outputs, **(metadata or {})}
        self.epoch, self.best = 0, math.inf
        if resume:
            self._resume()

    # -- set-up ----------------------------------------------------------------------------
    def _make_optimizer(self) -> torch.optim.Optimizer:
        s, params = self.settings, self.model.parameters()
        if s.optimizer == "adam":
            return torch.optim.Adam(params, lr=s.lr, weight_decay=s.weight_decay)
        if s.optimizer == "adamw":
            return torch.optim.AdamW(params, lr=s.lr, weight_decay=s.weight_decay)
        return torch.optim.SGD(params, lr=s.lr, momentum=0.9, weight_decay=s.weight_decay)

    def _make_scheduler(self):
        s, opt = self.settings, self.optimizer
        if s.scheduler == "step":
            return torch.optim.lr_scheduler.StepLR(opt, step_size=s.step_size, gamma=s.gamma)
        if s.scheduler == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=s.epochs)
        if s.scheduler == "onecycle":
            return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=s.lr, epochs=s.epochs,
                                                       steps_per_epoch=self.steps_per_epoch)
        return None

    def _resume(self) -> None:
        path = self.out / "last.pt" if self.out is not None else None
        if path is None or not path.is_file():
            raise FileNotFoundError(f"Trainer: nothing to resume: {path} does not exist")
        data = load_checkpoint(path)
        inner = self.model.model if isinstance(self.model, NormalizedModel) else self.model
        inner.load_state_dict(data["state_dict"])
        if isinstance(self.model, NormalizedModel):
            for name, value in data["normalization"].items():
                getattr(self.model, name).copy_(value)
        state = data["training"]
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        self.epoch, self.best = state["epoch"], state["best"]

    # -- the loop --------------------------------------------------------------------------
    def _autocast(self):
        enabled = self.settings.amp and self.device.type == "cuda"
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    def train_epoch(self, epoch: int) -> dict:
        """One pass over the training set; returns the mean loss and throughput."""
        s = self.settings
        self.model.train()
        order = epoch_permutation(len(self.train_batches), s.seed, epoch)
        total, count, started = 0.0, 0, time.perf_counter()
        losses = []
        for x, y in self.train_batches.batches(s.batch_size, order, self.rank, self.world):
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            with self._autocast():
                pred = self.parallel(x)
            loss = self.loss_fn(pred.float(), y).mean()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if s.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), s.grad_clip)
            self.optimizer.step()
            if s.scheduler == "onecycle":
                self.scheduler.step()
            losses.append(loss.detach() * len(x))
            count += len(x)
        if self.scheduler is not None and s.scheduler != "onecycle":
            self.scheduler.step()
        total = torch.stack(losses).sum() if losses else torch.zeros(())
        totals = distributed.all_sum(torch.stack([total.double(), torch.full_like(total, count).double()]))
        seconds = time.perf_counter() - started
        return {"train_loss": float(totals[0] / totals[1]), "seconds": seconds,
                "samples_per_second": float(totals[1]) / seconds}

    def evaluate(self, batches: FieldBatches | None = None) -> dict:
        """Relative L2 (per sample, then the mean) and MSE on ``batches`` (default the test set)."""
        values = per_sample_metrics(self.model, batches or self.test_batches, device=self.device,
                                    names=("relative_l2", "mse"), autocast=self.settings.amp,
                                    batch_size=max(self.settings.batch_size, 64))
        errors = values["relative_l2"]
        return {"test_relative_l2": float(errors.mean()),
                "test_relative_l2_std": float(errors.std()) if len(errors) > 1 else 0.0,
                "test_mse": float(values["mse"].mean())}

    def fit(self) -> list[dict]:
        """Train from the current epoch to ``settings.epochs``; return the epochs' metrics."""
        s = self.settings
        history = []
        if self.out is not None and self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
            self._truncate_metrics()
        bar = tqdm(range(self.epoch + 1, s.epochs + 1), desc="train", disable=not self.progress,
                   initial=self.epoch, total=s.epochs, dynamic_ncols=True)
        for epoch in bar:
            record = {"epoch": epoch, **self.train_epoch(epoch),
                      "lr": self.optimizer.param_groups[0]["lr"]}
            last = epoch == s.epochs
            if self.test_batches is not None and (epoch % s.eval_every == 0 or last):
                record.update(self.evaluate())
            self.epoch = epoch
            improved = record.get("test_relative_l2", math.inf) < self.best
            if improved:
                self.best = record["test_relative_l2"]
            if self.rank == 0 and self.out is not None:
                if improved:
                    self.save(self.out / "best.pt", record)
                if epoch % s.checkpoint_every == 0 or last:
                    self.save(self.out / "last.pt", record)
                with open(self.out / "metrics.jsonl", "a") as f:
                    f.write(json.dumps(record) + "\n")
            history.append(record)
            postfix = {"loss": f"{record['train_loss']:.3e}"}
            if "test_relative_l2" in record:
                postfix["test"] = f"{record['test_relative_l2']:.3e}"
            bar.set_postfix(postfix)
        bar.close()
        return history

    def save(self, path: str | os.PathLike, record: dict | None = None) -> Path:
        """Write a checkpoint of the model with the training state (atomic)."""
        training = {
            "epoch": self.epoch, "best": self.best, "settings": dataclasses.asdict(self.settings),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "rng": torch.get_rng_state(), "record": record or {},
        }
        metadata = {**self.metadata, "metrics": record or {}}
        return save_checkpoint(path, self.model, metadata, training=training)

    def _truncate_metrics(self) -> None:
        """Drop metric lines of epochs after the resumed one (a run killed mid-epoch)."""
        path = self.out / "metrics.jsonl"
        if not path.is_file():
            return
        lines = [line for line in path.read_text().splitlines()
                 if line.strip() and json.loads(line)["epoch"] <= self.epoch]
        path.write_text("".join(line + "\n" for line in lines))


def _role(dataset, role: str) -> list[str]:
    info = getattr(dataset, "field_info", {})
    return [name for name, f in info.items() if f.get("role") == role]
