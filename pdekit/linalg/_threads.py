"""Intra-op thread control for latency-bound work on the CPU."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["serial_on_cpu"]


@contextmanager
def serial_on_cpu(device: torch.device, enabled: bool = True) -> Iterator[None]:
    """Run a block on one CPU thread (the thread count is restored afterwards), as
    ``threadpoolctl`` does for BLAS.

    For latency-bound loops of tiny kernels (small Sinkhorn problems, CG on a small sparse
    system) parallel regions only add synchronisation; where other processes load the cores,
    each region also waits for a descheduled thread (measured on 2 shared cores: a sparse
    product of 11 ms instead of 11 us, a 100 x 100 Sinkhorn 5x slower). Dataset generation
    also runs each sample on one thread, so its files do not depend on the thread count.
    """
    if not enabled or device.type != "cpu" or torch.get_num_threads() == 1:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
