"""Benchmark records: the CPU contention check that comes before every CPU benchmark."""

import json
import os
import subprocess
import sys
import threading
import time

import pytest

import pdekit.bench
from pdekit.bench import run_benchmark
from pdekit.bench.record import BenchmarkReport, busy_cores_elsewhere, contention_warning

linux_only = pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="reads /proc/stat")


@linux_only
def test_busy_cores_elsewhere_counts_another_process_spinning():
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        busy = busy_cores_elsewhere(window=0.5)
    finally:
        spinner.kill()
        spinner.wait()
    assert busy is not None and busy >= 0.6  # one core, less what the scheduler keeps back


@linux_only
def test_busy_cores_elsewhere_leaves_out_this_process():
    before = busy_cores_elsewhere(window=0.5)
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            pass

    thread = threading.Thread(target=spin)
    thread.start()
    try:
        during = busy_cores_elsewhere(window=0.5)  # the sleep releases the GIL to the spinner
    finally:
        stop.set()
        thread.join()
    assert during < before + 0.5  # counted, the spinner would add about a whole core
    with pytest.raises(ValueError, match="`window`"):
        busy_cores_elsewhere(window=0)


def test_contention_warning_only_when_the_run_needs_busy_cores():
    assert contention_warning(None, threads=2, cores=2) is None  # not measured
    assert contention_warning(0.1, threads=2, cores=2) is None
    assert contention_warning(1.0, threads=3, cores=4) is None
    many = contention_warning(1.9, threads=2, cores=2)
    assert "1.9 of the 2 CPU cores" in many and "OMP_NUM_THREADS=1" in many
    assert "OMP_NUM_THREADS=2" in contention_warning(2.0, threads=4, cores=4)
    one = contention_warning(1.9, threads=1, cores=2)
    assert "shares a core" in one and "OMP_NUM_THREADS" not in one


@pytest.mark.parametrize("busy", [0.0, float(os.cpu_count() or 1)])
def test_run_benchmark_warns_of_busy_cores_and_records_them(busy, monkeypatch, tmp_path):
    monkeypatch.setattr(pdekit.bench, "busy_cores_elsewhere", lambda: busy)
    lines: list[str] = []
    path = tmp_path / "dcdm.json"
    report = run_benchmark("dcdm", problems=["poisson2d-16"], instances=1, methods=("pdekit-cg",),
                           json_path=path, echo=lines.append)
    warned = [line for line in lines if line.startswith("bench: warning")]
    assert len(warned) == (1 if busy else 0) and (not warned or lines[0] == warned[0])
    assert report.busy_cores_elsewhere == busy
    assert json.loads(path.read_text())["busy_cores_elsewhere"] == busy
    assert BenchmarkReport.read_json(path).busy_cores_elsewhere == busy
