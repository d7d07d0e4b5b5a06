"""The one training loop of pdekit: every learned solver is trained by :class:`Trainer`.

Plain PyTorch: optimiser and scheduler from :class:`TrainingSettings`, the loss, batches and
test metrics of a :class:`~pdekit.train.task.Task` (default: per-sample relative L2 on
de-normalised fields), evaluation on the test split, tqdm progress, metrics appended to
``metrics.jsonl``, self-describing ``best.pt`` / ``last.pt`` checkpoints, exact resume after a
kill or a wall-clock time limit (``fit(max_time=)``), bf16 autocast on CUDA, gradient
clipping, an exponential moving average of the weights, and data-parallel training under
``torchrun`` (DDP; gloo on the CPU, NCCL on CUDA).

On the CPU, :meth:`Trainer.fit` flushes subnormal floats to zero while it runs
(:func:`torch.set_flush_denormal`): late in long runs some of the training state (weights,
gradients, the optimiser's moments; which ones was not pinned down) can drift into the
subnormal range (below 1.2e-38 in float32), where x86 arithmetic is many times slower. A
100-epoch Latent Spectral Model run on Darcy (one thread) slowed from 72 to 180 s per epoch
between epochs 38 and 50; resumed with flushing, the same state trained at 76 s per epoch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from pdekit.data.dataset import SampleSubset
from pdekit.models.checkpoint import load_checkpoint, save_checkpoint
from pdekit.models.normalization import NormalizedModel
from pdekit.train import distributed
from pdekit.train.batches import epoch_permutation
from pdekit.train.metrics import mse, relative_l2
from pdekit.train.task import Task, task_spec

__all__ = ["EPOCH_SCHEDULES", "LOSSES", "Trainer", "TrainingSettings"]

# schedules whose learning rate depends on the number of epochs: a resumed run must keep it
EPOCH_SCHEDULES = ("cosine", "onecycle")

LOSSES = {"relative_l2": relative_l2, "mse": mse}  # the supervised task's `loss` setting
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
    grid point, as FNO/LSM; ``field``: one mean and std per field). ``ema_decay`` > 0 keeps
    an exponential moving average of the weights (updated every step), which is what is
    evaluated and saved as the model.

    Attributes
    ----------
    epochs : int
        Passes over the training split.
    batch_size : int
        Global batch size. For a model with batch-norm layers, a last batch that would give a
        process a single sample (on which batch norm cannot train) is left out of that epoch;
        the order is drawn afresh each epoch, so a different sample sits out each time.
    loss : str
        Supervised loss: ``"relative_l2"`` (per sample) or ``"mse"``.
    optimizer : str
        ``"adam"``, ``"adamw"`` or ``"sgd"``.
    lr : float
        Learning rate (the peak one for ``onecycle``).
    weight_decay : float
        Weight decay of the optimiser.
    scheduler : str
        ``"none"``, ``"step"``, ``"cosine"`` or ``"onecycle"``.
    step_size, gamma : int, float
        The ``step`` scheduler multiplies the learning rate by ``gamma`` every ``step_size`` epochs.
    grad_clip : float
        Clip the gradient norm at this value (0: no clipping).
    normalization : str
        ``"pointwise"``, ``"field"`` or ``"none"`` Gaussian normalisation of inputs and outputs.
    eval_every : int
        Evaluate on the test split every this many epochs.
    checkpoint_every : int
        Write ``last.pt`` every this many epochs.
    amp : bool
        bf16 autocast on CUDA (ignored on the CPU).
    seed : int
        Seed of the weights, the batch order and the task's draws.
    preload : bool
        Read small datasets into memory once.
    num_workers : int
        ``DataLoader`` worker processes when not preloaded.
    ema_decay : float
        Decay of the exponential moving average of the weights (0: none).
    compile : bool
        Run the training steps through ``torch.compile`` (the model's forward and backward;
        evaluation and checkpoints use the plain module, which shares its weights). Worth it
        for long runs on a GPU; the first steps pay the compilation. Where a compiled step
        fails (no C++ compiler for the CPU backend, an operation the compiler does not
        support), the Trainer warns and trains eagerly from that step on; an error the plain
        module raises too is raised.
    validation_fraction : float
        Fraction of the training samples held out (drawn from ``seed``, fixed for the run):
        they are not trained on, are evaluated with the test set (metrics ``val_*``), and
        choose ``best.pt``. 0 (default): ``best.pt`` is chosen on the test metrics, so its test
        figure is optimistic; report ``last.pt``, or hold out a validation set.
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
    ema_decay: float = 0.0
    compile: bool = False
    validation_fraction: float = 0.0

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
            (0 <= self.validation_fraction < 1, "`validation_fraction` must be in [0, 1)"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"TrainingSettings: {message}")


class Trainer:
    """Train a model on a dataset and evaluate it on another.

    Parameters
    ----------
    model : torch.nn.Module
        A registered pdekit model (for the default task, one taking ``(B, C_in, *grid)`` to
        ``(B, C_out, *grid)``).
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
        Continue from ``out/last.pt`` (same epoch, optimiser, scheduler, EMA and RNG state: the
        CPU generator's, and on CUDA the device generator's).
    metadata : dict, optional
        Stored in the checkpoints (e.g. the recipe and dataset path).
    progress : bool
        Show a tqdm bar (on the first process only).
    task : Task, optional
        What is optimised and measured (:mod:`pdekit.train.task`); default supervised
        field-to-field training.
    """

    def __init__(self, model: torch.nn.Module, train, test=None, settings: TrainingSettings | None = None, *,
                 inputs: list[str] | None = None, outputs: list[str] | None = None,
                 out: str | os.PathLike | None = None, device: str | torch.device = "cpu",
                 resume: bool = False, metadata: dict | None = None, progress: bool = True,
                 task: Task | None = None, **overrides):
        if settings is None:
            settings = TrainingSettings(**overrides)
        elif overrides:
            settings = dataclasses.replace(settings, **overrides)
        self.settings = s = settings
        self.task = task if task is not None else Task()
        self.rank, self.world = distributed.setup(device)
        self.device = distributed.local_device(device)
        self.out = Path(out) if out is not None else None
        self.progress = progress and self.rank == 0
        inputs = list(inputs or [*_role(train, "input"), *_role(train, "mask")])
        outputs = list(outputs or _role(train, "output"))
        if type(self.task) is Task and (not inputs or not outputs):
            raise ValueError("Trainer: name the `inputs` and `outputs` fields (the dataset does not say)")
        self.validation_batches = None
        if s.validation_fraction > 0:
            train, held_out = split_for_validation(train, s.validation_fraction, s.seed)
            self.validation_batches = self.task.make_batches(held_out, inputs=inputs, outputs=outputs,
                                                             settings=s)
        #: the metric that chooses best.pt: the task's test metric, or its validation twin
        self.select = (_validation_name(self.task.select) if self.validation_batches is not None
                       else self.task.select)
        self.train_batches = self.task.make_batches(train, inputs=inputs, outputs=outputs, settings=s)
        self.test_batches = (self.task.make_batches(test, inputs=inputs, outputs=outputs, settings=s)
                             if test is not None else None)
        self.model = self.task.wrap_model(model, self.train_batches, train, s).to(self.device)
        #: batch-norm layers cannot train on a batch of one (PyTorch refuses where a channel
        #: has a single value); such a last batch is then left out of each epoch
        self.batch_norm = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                              for m in self.model.modules())
        self.parallel = distributed.wrap(self.model, self.device) if self.world > 1 else self.model
        #: the uncompiled ``parallel``, which a failed compiled step falls back to
        self.eager_parallel = self.parallel
        if s.compile:
            self.parallel = torch.compile(self.parallel)
        self.optimizer = self._make_optimizer()
        self.steps_per_epoch = max(1, math.ceil(len(self.train_batches) / s.batch_size))
        self.scheduler = self._make_scheduler()
        self.ema = ([p.detach().clone() for p in self.model.parameters()] if s.ema_decay > 0 else None)
        self.metadata = {"inputs": inputs, "outputs": outputs, "task": task_spec(self.task),
                         **(metadata or {})}
        self.epoch = 0
        self.stopped_early = False  # set by fit() when its `max_time` ran out
        self.best = -math.inf if self.task.maximize else math.inf
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
        saved_epochs = data["training"].get("settings", {}).get("epochs", self.settings.epochs)
        if self.settings.scheduler in EPOCH_SCHEDULES and saved_epochs != self.settings.epochs:
            raise ValueError(
                f"Trainer: {path} ran a {self.settings.scheduler!r} schedule over {saved_epochs} epochs; "
                f"its learning rate is a function of that count, so it cannot continue as one over "
                f"{self.settings.epochs} (resume with epochs = {saved_epochs}, or start a new run)")
        inner = self.model.model if isinstance(self.model, NormalizedModel) else self.model
        inner.load_state_dict(data["state_dict"])
        if isinstance(self.model, NormalizedModel):
            for name, value in data["normalization"].items():
                getattr(self.model, name).copy_(value)
        state = data["training"]
        if self.ema is not None:  # the saved model holds the average; the raw weights are kept aside
            raws = state["raw_parameters"]
            for shadow, p, raw in zip(self.ema, self.model.parameters(), raws, strict=True):
                shadow.copy_(p.detach())
                p.data.copy_(raw)
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        if self.device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        self.epoch, self.best = state["epoch"], state["best"]

    # -- the loop --------------------------------------------------------------------------
    def _autocast(self):
        enabled = self.settings.amp and self.device.type == "cuda"
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    def _to_device(self, batch) -> tuple[torch.Tensor, ...]:
        return tuple(t.to(self.device, non_blocking=True) if isinstance(t, torch.Tensor) else t
                     for t in batch)

    def train_epoch(self, epoch: int) -> dict:
        """One pass over the training set; returns the mean loss and throughput."""
        s = self.settings
        self.model.train()
        order = epoch_permutation(len(self.train_batches), s.seed, epoch)
        if self.batch_norm:
            order = _without_lone_last_batch(order, s.batch_size, self.world)
        count, started = 0, time.perf_counter()
        losses = []
        for batch in self.train_batches.batches(s.batch_size, order, self.rank, self.world):
            batch = self._to_device(batch)
            try:
                loss = self._forward_backward(batch)
            except Exception as err:
                if self.parallel is self.eager_parallel:
                    raise
                loss = self._fall_back_to_eager(batch, err)
            if s.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), s.grad_clip)
            self.optimizer.step()
            self._update_ema()
            if s.scheduler == "onecycle":
                self.scheduler.step()
            size = len(batch[0])
            losses.append(loss.detach() * size)
            count += size
        if self.scheduler is not None and s.scheduler != "onecycle":
            self.scheduler.step()
        total = torch.stack(losses).sum() if losses else torch.zeros((), device=self.device)
        totals = distributed.all_sum(torch.stack([total.double(), torch.full_like(total, count).double()]))
        seconds = time.perf_counter() - started
        return {"train_loss": float(totals[0] / totals[1]), "seconds": seconds,
                "samples_per_second": float(totals[1]) / seconds}

    def _forward_backward(self, batch) -> torch.Tensor:
        """The batch's mean loss, its gradients left in the parameters' ``.grad``."""
        with self._autocast():
            loss = self.task.loss(self.parallel, batch, self.settings)
        loss = loss.float().mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        return loss

    def _fall_back_to_eager(self, batch, err: Exception) -> torch.Tensor:
        """Redo a step whose compiled run raised ``err`` with the plain module, and keep it.

        An error of the model itself recurs here and is raised (chained to ``err``); a failure
        of the compiler alone does not, and training goes on eagerly after a warning.
        """
        self.parallel = self.eager_parallel
        loss = self._forward_backward(batch)
        # the first two lines: a compiler failure names the backend, then the error it raised
        what = " ".join([line.strip() for line in str(err).splitlines() if line.strip()][:2])[:300]
        warnings.warn(f"Trainer: the compiled training step failed ({type(err).__name__}: {what}); "
                      "training without torch.compile from here on", RuntimeWarning, stacklevel=2)
        return loss

    @torch.no_grad()
    def _update_ema(self) -> None:
        if self.ema is None:
            return
        for shadow, p in zip(self.ema, self.model.parameters(), strict=True):
            shadow.lerp_(p.detach(), 1.0 - self.settings.ema_decay)

    @contextlib.contextmanager
    def averaged_weights(self):
        """Within the block the model holds its EMA weights (no-op without ``ema_decay``)."""
        if self.ema is None:
            yield self.model
            return
        params = list(self.model.parameters())
        raw = [p.detach().clone() for p in params]
        with torch.no_grad():
            for p, shadow in zip(params, self.ema, strict=True):
                p.copy_(shadow)
        try:
            yield self.model
        finally:
            with torch.no_grad():
                for p, r in zip(params, raw, strict=True):
                    p.copy_(r)

    def evaluate(self, batches=None) -> dict:
        """The task's test metrics on ``batches`` (default the test set), with the EMA weights."""
        with self.averaged_weights():
            return self.task.evaluate(self.model, self.test_batches if batches is None else batches,
                                      device=self.device, settings=self.settings)

    def _improved(self, record: dict) -> bool:
        value = record.get(self.select)
        if value is None or not math.isfinite(value):
            return False
        return value > self.best if self.task.maximize else value < self.best

    def fit(self, max_time: float | None = None) -> list[dict]:
        """Train from the current epoch to ``settings.epochs``; return the epochs' metrics.

        Parameters
        ----------
        max_time : float, optional
            Wall-clock budget in seconds (e.g. a job's time limit). After each epoch the run
            stops if one more, at the mean pace of this call so far, would overrun the
            budget; the epoch just run is then evaluated and ``last.pt`` written (as for the
            final epoch), so ``resume=True`` continues the run exactly, and
            :attr:`stopped_early` is set. At least one epoch always runs.

        On the CPU subnormal floats are flushed to zero for the duration (the module's note);
        the previous setting is restored afterwards.
        """
        if max_time is not None and not max_time > 0:
            raise ValueError(f"Trainer.fit: `max_time` must be > 0 seconds, got {max_time!r}")
        with _flush_subnormals(self.device.type == "cpu"):
            return self._fit(max_time)

    def _out_of_time(self, started: float, epochs_run: int, max_time: float | None) -> bool:
        """Whether one more epoch, at the mean pace of this call so far, would overrun ``max_time``
        (agreed by all processes: any one out of time stops them all)."""
        if max_time is None:
            return False
        elapsed = time.perf_counter() - started
        late = float(elapsed + elapsed / epochs_run > max_time)
        return bool(distributed.all_sum(torch.tensor([late], device=self.device)).item() > 0)

    def _fit(self, max_time: float | None = None) -> list[dict]:
        s = self.settings
        history = []
        self.stopped_early = False
        started = time.perf_counter()
        if self.out is not None and self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
            self._truncate_metrics()
        bar = tqdm(range(self.epoch + 1, s.epochs + 1), desc="train", disable=not self.progress,
                   initial=self.epoch, total=s.epochs, dynamic_ncols=True)
        first = self.epoch + 1
        for epoch in bar:
            record = {"epoch": epoch, **self.train_epoch(epoch),
                      "lr": self.optimizer.param_groups[0]["lr"]}
            last = epoch == s.epochs
            if not last and self._out_of_time(started, epoch - first + 1, max_time):
                last = self.stopped_early = True
            if epoch % s.eval_every == 0 or last:
                if self.test_batches is not None:
                    record.update(self.evaluate())
                if self.validation_batches is not None:
                    record.update({_validation_name(k): v
                                   for k, v in self.evaluate(self.validation_batches).items()})
            self.epoch = epoch
            improved = self._improved(record)
            if improved:
                self.best = record[self.select]
            if self.rank == 0 and self.out is not None:
                if improved:
                    self.save(self.out / "best.pt", record)
                if epoch % s.checkpoint_every == 0 or last:
                    self.save(self.out / "last.pt", record)
                with open(self.out / "metrics.jsonl", "a") as f:
                    f.write(json.dumps(record) + "\n")
            history.append(record)
            postfix = {"loss": f"{record['train_loss']:.3e}"}
            if self.select in record:
                postfix[self.select.removeprefix("test_")] = f"{record[self.select]:.3e}"
            bar.set_postfix(postfix)
            if self.stopped_early:
                break
        bar.close()
        return history

    def save(self, path: str | os.PathLike, record: dict | None = None) -> Path:
        """Write a checkpoint of the model (its EMA weights when averaging) with the training
        state (atomic)."""
        training = {
            "epoch": self.epoch, "best": self.best, "settings": dataclasses.asdict(self.settings),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "rng": torch.get_rng_state(), "record": record or {},
            # the draws tasks make on the GPU (PDE-Refiner's noise levels and noise)
            "cuda_rng": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
        }
        if self.ema is not None:
            training["raw_parameters"] = [p.detach().cpu().clone() for p in self.model.parameters()]
        metadata = {**self.metadata, "metrics": record or {}}
        with self.averaged_weights():
            return save_checkpoint(path, self.model, metadata, training=training)

    def _truncate_metrics(self) -> None:
        """Drop metric lines of epochs after the resumed one (a run killed mid-epoch)."""
        path = self.out / "metrics.jsonl"
        if not path.is_file():
            return
        lines = [line for line in path.read_text().splitlines()
                 if line.strip() and json.loads(line)["epoch"] <= self.epoch]
        path.write_text("".join(line + "\n" for line in lines))


def _without_lone_last_batch(order: torch.Tensor, batch_size: int, world: int) -> torch.Tensor:
    """``order`` without its last, partial global batch where that would leave a process a
    batch of one sample (and a full batch precedes it). The order is drawn afresh each epoch,
    so a different sample sits out each time."""
    remainder = len(order) % batch_size
    if 0 < remainder < 2 * world and len(order) > batch_size:
        return order[:len(order) - remainder]
    return order


def split_for_validation(dataset, fraction: float, seed: int) -> tuple[SampleSubset, SampleSubset]:
    """``(kept, held_out)``: ``round(fraction * len(dataset))`` samples drawn without replacement
    from a generator seeded with ``seed`` are held out; both parts keep the dataset's order.

    Raises
    ------
    ValueError
        If either part would be empty.
    """
    n = len(dataset)
    count = round(fraction * n)
    if not 0 < count < n:
        raise ValueError(f"Trainer: `validation_fraction` = {fraction} holds out {count} of the {n} "
                         "training samples; each part needs at least one")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    held = set(order[:count].tolist())
    kept = [i for i in range(n) if i not in held]
    return SampleSubset(dataset, kept), SampleSubset(dataset, sorted(held))


def _validation_name(metric: str) -> str:
    """``test_relative_l2`` -> ``val_relative_l2``."""
    return "val_" + metric.removeprefix("test_")


def _role(dataset, role: str) -> list[str]:
    info = getattr(dataset, "field_info", {})
    return [name for name, f in info.items() if f.get("role") == role]


def _subnormals_flushed() -> bool:
    """Whether the CPU currently flushes subnormal floats to zero."""
    return float(torch.full((1,), 1e-39) * 1.0) == 0.0


@contextlib.contextmanager
def _flush_subnormals(enabled: bool):
    """Flush subnormal floats to zero on the CPU inside the block (where supported), then put
    back the setting found on entry."""
    before = _subnormals_flushed()
    changed = enabled and not before and torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if changed:
            torch.set_flush_denormal(False)
