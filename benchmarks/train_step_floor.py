"""A training step against its FLOP floor, quiet and beside busy neighbours.

For a preset's full training step (both objectives, backward, clipping, AdamW) on a synthetic batch:
  - its FLOPs (torch.utils.flop_counter) and this machine's float32 matmul rate, measured in the same
    run and at the same thread count: floor = FLOPs / rate, and the step's ratio to it;
  - the step's time beside 0, 1 and 3 busy processes (each a pure-Python loop that keeps one core
    busy), at 1 and 2 threads: the ratio to the quiet time at the same thread count.

    python benchmarks/train_step_floor.py [--preset tiny] [--batch 32] [--seconds 3] [--repeats 5]

Run it on an otherwise idle machine: the quiet rows are the reference of the others. The load
average before the run is printed beside the figures.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time

import torch
from train_throughput import sslvgs_step_fn, synthetic_batch  # the same step, beside its floor


def step_flops(step) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def matmul_rate(size: int = 512, seconds: float = 1.0) -> float:
    """float32 FLOP/s of square matmuls of `size` at the current thread count (best of 3 rounds)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    best = 0.0
    for _ in range(3):
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds / 3:
            a @ b
            count += 1
        best = max(best, 2 * size**3 * count / (time.perf_counter() - started))
    return best


def seconds_per_step(step, repeats: int) -> float:
    step()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2]  # the median step


def _burn(stop) -> None:
    while not stop.is_set():
        sum(range(10_000))


def beside_busy(count: int):
    """Start `count` busy processes; returns a function that stops them."""
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    workers = [context.Process(target=_burn, args=(stop,), daemon=True) for _ in range(count)]
    for worker in workers:
        worker.start()
    time.sleep(0.5)  # let them reach their loop

    def end() -> None:
        stop.set()
        for worker in workers:
            worker.join()

    return end


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--region-dim", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", default="1,2", help="thread counts to measure")
    parser.add_argument("--neighbours", default="0,1,3", help="busy processes beside the step")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}; {os.cpu_count()} cores; torch "
          f"{torch.__version__}; preset {args.preset}, batch {args.batch} x {args.seconds:g} s")  # fmt: skip
    batch = synthetic_batch(args.batch, args.seconds, args.region_dim, "cpu")
    for threads in (int(t) for t in args.threads.split(",")):
        torch.set_num_threads(threads)
        step = sslvgs_step_fn(args.preset, batch, "cpu")
        flops, rate = step_flops(step), matmul_rate()
        floor = flops / rate
        quiet = None
        for neighbours in (int(n) for n in args.neighbours.split(",")):
            end = beside_busy(neighbours) if neighbours else (lambda: None)
            try:
                seconds = seconds_per_step(step, args.repeats)
            finally:
                end()
            quiet = seconds if neighbours == 0 else quiet
            versus = f"{seconds / quiet:5.2f}x quiet" if quiet else ""
            print(f"threads {threads}, beside {neighbours} busy: step {1000 * seconds:7.1f} ms = "
                  f"{seconds / floor:5.1f}x its floor ({flops / 1e9:.2f} GFLOP at "
                  f"{rate / 1e9:.0f} GFLOP/s = {1000 * floor:.1f} ms) {versus}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
