"""``pdekit bench train``: the Trainer's throughput against a bare PyTorch loop.

Both train the same model (a DeepONet with a CNN branch, the Darcy architecture, or a
MultiONet) on the same in-memory data (random fields ``(N, 1, n, n)``), with the same Adam
optimiser, relative-L2 loss, batch size and sample order, for the same number of epochs. The
bare loop is the few lines a user would write; the Trainer adds its bookkeeping (loss
accumulation, metrics, RNG-derived order, scheduler hooks). Reported: samples per second of
each and the Trainer's overhead ``1 - ours / bare`` (no test set, nothing written to disk), and
on CUDA the peak device memory of each run.

``--problems lsm`` (not in the default set: heavy on a CPU) trains the Latent Spectral Model
with the paper's Darcy configuration as ``solvers/lsm-darcy.toml`` gives it (width 64, batch 20,
85 x 85; Wu et al. 2023): the training throughput and memory a user gets from that recipe.

On CUDA the Trainer also runs as recipes train there: ``pdekit-trainer-bf16`` (bf16 autocast,
the default ``amp``) and ``pdekit-trainer-bf16-compile`` (and ``compile = true``); their
``speedup`` is against the float32 Trainer. With ``--problems lsm`` the report's ``lsm-85``
records also give the projected time of the paper's 501 epochs of 1000 samples
(``paper_budget_hours``), the figure that says whether that run fits a GPU session.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from pdekit.bench.record import BenchmarkReport, describe_device, format_table, save_figure, synchronize
from pdekit.models import DeepONet, MultiONet
from pdekit.models.registry import build_model
from pdekit.train import Trainer
from pdekit.train.batches import epoch_permutation
from pdekit.train.metrics import relative_l2

__all__ = ["run"]

PROBLEMS = ("deeponet-cnn", "multionet", "lsm")
PAPER_SAMPLES = 501 * 1000  # solvers/lsm-darcy.toml: 501 epochs of the 1000 training samples
LSM_RECIPE = Path(__file__).resolve().parents[2] / "solvers" / "lsm-darcy.toml"


class _Fields(torch.utils.data.Dataset):
    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x, self.y = x, y
        self.field_info = {"a": {"role": "input"}, "u": {"role": "output"}}

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"a": self.x[i, 0], "u": self.y[i, 0]}


def _model(name: str, n: int, quick: bool = False) -> torch.nn.Module:
    torch.manual_seed(0)
    if name == "lsm":  # the recipe's model; a narrow one for a smoke run
        from pdekit.train.recipe import load_train_recipe

        arguments = dict(load_train_recipe(LSM_RECIPE).arguments)
        if quick:
            arguments.update(width=8, patch_size=3)
        return build_model("lsm", **arguments)
    if name == "deeponet-cnn":
        return DeepONet([128, 128], [2, 128, 128], branch_type="cnn", grid_shape=(n, n))
    return MultiONet(n * n, 2, [128, 128, 128])


def _bare_loop(model, x, y, epochs: int, batch_size: int, device) -> float:
    """The loop a user writes by hand; returns seconds."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    synchronize(device)
    started = time.perf_counter()
    for epoch in range(1, epochs + 1):
        order = epoch_permutation(len(x), 0, epoch)
        for i in range(0, len(x), batch_size):
            index = order[i:i + batch_size]
            xb, yb = x[index].to(device), y[index].to(device)
            loss = relative_l2(model(xb), yb).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    synchronize(device)
    return time.perf_counter() - started


def trainer_variants(device: torch.device) -> dict[str, dict]:
    """The Trainer configurations measured on ``device``: method name -> Trainer keywords.

    The float32 Trainer everywhere (compared with the bare float32 loop); on CUDA also bf16
    autocast, and bf16 autocast with ``torch.compile``, as recipes train there.
    """
    variants = {"pdekit-trainer": {"amp": False}}
    if device.type == "cuda":
        variants["pdekit-trainer-bf16"] = {"amp": True}
        variants["pdekit-trainer-bf16-compile"] = {"amp": True, "compile": True}
    return variants


def run(
    device: str | torch.device = "cpu",
    *,
    problems: list[str] | None = None,
    quick: bool = False,
    echo=print,
    **_unused,
) -> BenchmarkReport:
    """Samples per second of :class:`~pdekit.train.Trainer` and of a bare loop.

    Parameters
    ----------
    problems : list of str, optional
        Models: ``deeponet-cnn`` (Darcy DeepONet), ``multionet`` (the default two) and ``lsm``
        (the paper-configuration Latent Spectral Model of ``solvers/lsm-darcy.toml``).
    quick : bool
        A small grid and few epochs (a smoke run).
    """
    device = torch.device(device)
    problems = problems or ["deeponet-cnn", "multionet"]
    unknown = [p for p in problems if p not in PROBLEMS]
    if unknown:
        raise ValueError(f"bench train: unknown problem {unknown[0]!r}; available: {', '.join(PROBLEMS)}")
    n, count, epochs, batch = (29, 64, 2, 16) if quick else (85, 400, 3, 20)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(count, 1, n, n, generator=g)
    y = torch.rand(count, 1, n, n, generator=g)
    report = BenchmarkReport("train", describe_device(device))
    echo(f"device: {report.device}; {count} samples of {n}x{n}, batch {batch}, {epochs} epochs")
    variants = trainer_variants(device)
    for name in problems:
        for method in ["bare-pytorch-loop", *variants] * 2:
            model = _model(name, n, quick).to(device)
            if method == "bare-pytorch-loop":
                _bare_loop(model, x, y, 1, batch, device)  # warm-up
                del model
                _reset_peak_memory(device)
                seconds = _bare_loop(_model(name, n, quick).to(device), x, y, epochs, batch, device)
            else:
                options = dict(epochs=epochs, batch_size=batch, normalization="none", device=device,
                               progress=False, **variants[method])
                trainer = Trainer(model, _Fields(x, y), **options)
                trainer.train_epoch(0)  # warm-up (and compilation)
                del trainer, model
                _reset_peak_memory(device)
                trainer = Trainer(_model(name, n, quick), _Fields(x, y), **options)
                synchronize(device)
                started = time.perf_counter()
                trainer.fit()
                synchronize(device)
                seconds = time.perf_counter() - started
            memory = _peak_memory_mib(device)
            report.add(f"{name}-{n}", method, seconds=seconds, samples_per_second=epochs * count / seconds,
                       batch_size=batch, peak_memory_mib=memory)
            echo(f"[{name}] {method}: {epochs * count / seconds:.1f} samples/s"
                 + ("" if memory is None else f", peak memory {memory:.0f} MiB"))
    _summarise(report)
    return report


def _reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_memory_mib(device: torch.device) -> float | None:
    """Peak CUDA memory allocated since the last reset, in MiB (None off CUDA)."""
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def _summarise(report: BenchmarkReport) -> None:
    """Keep the best of the two runs of each method; add the float32 Trainer's overhead against
    the bare loop, the other Trainer variants' speed-up against the float32 Trainer and, for the
    LSM on its Darcy grid, the projected hours of the paper's budget."""
    best: dict[tuple[str, str], dict] = {}
    for r in report.records:
        key = (r["problem"], r["method"])
        if key not in best or r["samples_per_second"] > best[key]["samples_per_second"]:
            best[key] = r
    report.records[:] = list(best.values())
    for r in report.records:
        bare = best[(r["problem"], "bare-pytorch-loop")]["samples_per_second"]
        trainer = best[(r["problem"], "pdekit-trainer")]["samples_per_second"]
        if r["method"] == "pdekit-trainer":
            r["overhead"] = 1 - r["samples_per_second"] / bare
        elif r["method"] != "bare-pytorch-loop":
            r["speedup"] = r["samples_per_second"] / trainer
        if r["problem"] == "lsm-85":
            r["paper_budget_hours"] = PAPER_SAMPLES / r["samples_per_second"] / 3600


def plot(report: BenchmarkReport, path: str | Path) -> Path:
    """Bars of samples per second per model, bare loop and Trainer side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    problems = list(dict.fromkeys(r["problem"] for r in report.records))
    methods = list(dict.fromkeys(r["method"] for r in report.records))
    width = 0.8 / len(methods)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for k, method in enumerate(methods):
        values = [next((r["samples_per_second"] for r in report.records
                        if r["problem"] == p and r["method"] == method), 0.0) for p in problems]
        ax.bar([i + width * k for i in range(len(problems))], values, width=width, label=method)
    ax.set_xticks([i + width * (len(methods) - 1) / 2 for i in range(len(problems))], problems)
    ax.set_ylabel("training samples per second")
    ax.legend()
    ax.set_title(f"pdekit bench train ({report.device})", fontsize=9)
    return save_figure(fig, path)


def summary_table(report: BenchmarkReport) -> str:
    """Samples per second, the Trainer's overhead against the bare loop and the variants' speed-up."""
    columns = ["problem", "method", "seconds", "samples_per_second", "overhead", "speedup",
               "peak_memory_mib", "paper_budget_hours"]
    return format_table(report.records, [c for c in columns if any(c in r for r in report.records)])
