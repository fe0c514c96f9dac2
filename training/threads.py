"""How many CPU threads a training process uses: half the cores by default, so it survives neighbours.

torch's default on the CPU is one thread per core. A step then waits at every operator for its
slowest thread, and when another busy process takes one of those cores the step stalls: on the
2-core VM a `tiny` step took 2.83x its quiet time beside one busy process at two threads and 0.97x
at one thread, 10.5x and 2.07x beside three (benchmarks/train_step_floor.py, 2026-12-07, load 1;
docs/performance.md). Half the cores leaves room for one
neighbour; `sslvgs reproduce` fills the rest with a second training process (`jobs`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

__all__ = ["default_threads", "default_jobs", "cpu_threads"]


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_threads() -> int:
    """Threads of one training process: half the cores this process may run on, at least one."""
    return max(1, _cores() // 2)


def default_jobs(threads: int | None = None) -> int:
    """Training processes that fit beside each other: cores // threads, at least one."""
    return max(1, _cores() // (threads or default_threads()))


@contextlib.contextmanager
def cpu_threads(threads: int | None) -> Iterator[int]:
    """torch's intra-op threads set to `threads` (None: `default_threads()`) inside the block, the
    previous count restored after it; yields the count in use."""
    count = default_threads() if threads is None else int(threads)
    if count < 1:
        raise ValueError(f"threads must be at least 1, got {count}")
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield count
    finally:
        torch.set_num_threads(previous)
