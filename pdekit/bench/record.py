"""Benchmark records: timing, device description, JSON files, tables.

A benchmark run writes ``{"benchmark", "device", "pdekit_version", "date", "records"}``;
each record is a flat object with ``problem``, ``method`` and measured numbers under fixed
names where they apply (``iterations``, ``seconds``, ``setup_seconds``,
``relative_residual``, ``error``, ``marginal_error``, ``samples_per_second``,
``gbytes_per_second``).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from pdekit._version import __version__
from pdekit.train.evaluate import save_figure  # the one figure writer (re-exported for benchmarks)

__all__ = [
    "BenchmarkReport",
    "busy_cores_elsewhere",
    "contention_warning",
    "copy_bandwidth",
    "describe_device",
    "format_table",
    "save_figure",
    "synchronize",
    "time_call",
]


def synchronize(device: torch.device | str) -> None:
    """Wait for queued work on ``device`` (no-op on the CPU)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def describe_device(device: torch.device | str) -> str:
    """A human-readable name of the device: GPU model, or CPU model and thread count."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    threads = torch.get_num_threads()
    return f"{name}, {threads} thread{'' if threads == 1 else 's'}"


def busy_cores_elsewhere(window: float = 0.25) -> float | None:
    """How many CPU cores other processes kept busy during the next ``window`` seconds.

    Measured from the kernel's counters (``/proc/stat``) less this process's own CPU time, so
    it is the load that competes with a CPU benchmark started now. None where ``/proc/stat``
    does not exist (not Linux).
    """
    if not window > 0:
        raise ValueError(f"busy_cores_elsewhere: `window` must be > 0 seconds, got {window!r}")

    def counters() -> tuple[float, float, float]:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:9]]  # user .. steal, in clock ticks
        busy = sum(ticks) - ticks[3] - (ticks[4] if len(ticks) > 4 else 0)  # less idle, iowait
        own = os.times()
        return busy / os.sysconf("SC_CLK_TCK"), own.user + own.system, time.perf_counter()

    try:
        busy0, own0, t0 = counters()
        time.sleep(window)
        busy1, own1, t1 = counters()
    except (OSError, ValueError, IndexError):
        return None
    return max(0.0, (busy1 - busy0) - (own1 - own0)) / (t1 - t0)


def contention_warning(busy: float | None, threads: int | None = None,
                       cores: int | None = None) -> str | None:
    """A warning line when other processes hold the cores a CPU run of ``threads`` threads needs
    (``busy`` cores busy elsewhere, from :func:`busy_cores_elsewhere`), else None.

    Several PyTorch threads on shared cores wait on each other: on 2 cores beside a 2-thread
    training run, a 2-thread multigrid-preconditioned CG solve (256 x 256) took 7.2 s, and
    0.07 s on one thread. One thread on a shared core runs at its share of the core.
    """
    if busy is None:
        return None
    threads = threads or torch.get_num_threads()
    cores = cores or os.cpu_count() or 1
    free = cores - busy
    if threads <= free + 0.5:
        return None
    held = f"warning: other processes keep {busy:.1f} of the {cores} CPU cores busy"
    if threads == 1:
        return f"{held}; this run shares a core and runs slower (its timings too)"
    return (f"{held} and this run uses {threads} threads, which then wait on each other: it can "
            f"run many times slower (wait for the cores, or run with "
            f"OMP_NUM_THREADS={max(1, round(free))})")


def time_call(
    fn: Callable[[], object],
    device: torch.device | str = "cpu",
    *,
    repeat: int = 5,
    warmup: int = 1,
    min_seconds: float = 0.0,
    graph: bool = False,
) -> float:
    """Median wall time of ``fn()`` in seconds, device work included.

    Runs ``warmup`` untimed calls, then at least ``repeat`` timed ones (more until
    ``min_seconds`` have passed), synchronising the device around each. With ``graph=True``
    on CUDA, ``fn`` is captured ten times over in a CUDA graph and the replays are timed:
    the device time of the kernels, without Python and launch overhead.
    """
    device = torch.device(device)
    for _ in range(warmup):
        fn()
    synchronize(device)
    calls = 1
    if graph and device.type == "cuda":
        calls = 10
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            fn()
        torch.cuda.current_stream().wait_stream(side)
        cuda_graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(cuda_graph):
            for _ in range(calls):
                fn()
        target = cuda_graph.replay
        target()
    else:
        target = fn
    synchronize(device)
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < repeat or time.perf_counter() - started < min_seconds:
        t0 = time.perf_counter()
        target()
        synchronize(device)
        times.append((time.perf_counter() - t0) / calls)
        if len(times) >= 10_000:
            break
    return statistics.median(times)


def copy_bandwidth(device: torch.device | str, nbytes: int = 1 << 28) -> float:
    """Measured device-memory bandwidth in GB/s of a large tensor copy (read + write)."""
    device = torch.device(device)
    src = torch.ones(nbytes // 4, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    seconds = time_call(lambda: dst.copy_(src), device, repeat=10, warmup=2)
    return 2 * nbytes / seconds / 1e9


@dataclass
class BenchmarkReport:
    """Collects the records of one benchmark run and writes them."""

    benchmark: str
    device: str
    records: list[dict] = field(default_factory=list)
    date: str = field(
        default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    )
    busy_cores_elsewhere: float | None = None  # CPU cores other processes held at the start

    def add(self, problem: str, method: str, **numbers) -> dict:
        """Append a flat record and return it."""
        record = {"problem": problem, "method": method, **numbers}
        self.records.append(record)
        return record

    def to_dict(self) -> dict:
        return {
            "benchmark": self.benchmark,
            "device": self.device,
            "pdekit_version": __version__,
            "date": self.date,
            "torch_version": torch.__version__,
            **({} if self.busy_cores_elsewhere is None
               else {"busy_cores_elsewhere": round(self.busy_cores_elsewhere, 2)}),
            "records": self.records,
        }

    @classmethod
    def read_json(cls, path: str | os.PathLike) -> BenchmarkReport:
        """A report written by :meth:`write_json`."""
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"bench: no report at {str(path)!r}")
        try:
            data = json.loads(path.read_text())
            return cls(data["benchmark"], data["device"], list(data["records"]), data["date"],
                       data.get("busy_cores_elsewhere"))
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ValueError(f"bench: {str(path)!r} is not a benchmark report ({err})") from None

    def write_json(self, path: str | os.PathLike) -> Path:
        """Write the report atomically (a temporary file renamed into place)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        tmp.replace(path)
        return path


def format_table(rows: Sequence[dict], columns: Sequence[str]) -> str:
    """A plain-text table of ``rows`` (dicts) over ``columns``; floats in 4 significant digits."""

    def cell(value) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.4g}"
        return str(value)

    body = [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in body)) if body else len(c) for i, c in enumerate(columns)]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))
    rule = "  ".join("-" * w for w in widths)
    out = [line, rule]
    out += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in body]
    return "\n".join(out)
