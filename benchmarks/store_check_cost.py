"""What the integrity check of an activation store costs when it is opened (docs/caches.md).

Builds a store of the size of a real one (default: the base model's 13 layers x 768 features over the
13570 frames of the small corpus's `read` ABX set, float32: 542 MB) from random values, then times:

- `finish`: the inventory written at completion (reads every chunk once, CRC-32);
- `first open`: `open_store` in a process that has not checked the store yet (reads every chunk);
- `later opens`: `open_store` again in the same process (stat of every file, no read).

The first open reads from the page cache here (the store was just written); from a cold disk it
reads at the disk's speed, the same bytes that an ABX or CKA of every layer reads anyway.

    python benchmarks/store_check_cost.py [--layers 13 --frames 13570 --dim 768]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from probes import inventory  # noqa: E402
from probes.sources import Utterance  # noqa: E402
from probes.store import StoreWriter, locked  # noqa: E402
from probes.store_check import open_store  # noqa: E402


def build(path: Path, layers: int, frames: int, dim: int, utterances: int) -> StoreWriter:
    utts = [Utterance(f"u{i}", Path(f"u{i}.wav"), "s", "") for i in range(utterances)]
    header = {"model_id": "bench", "source_key": "bench", "layers": list(range(layers)),
              "dtype": "float32", "batch_size": 8, "max_batch_seconds": 160.0}  # fmt: skip
    writer = StoreWriter.open(path, header=header, utterances=utts, dim=dim)
    rng = np.random.default_rng(0)
    per_utt = np.full(utterances, frames // utterances)
    per_utt[-1] += frames - per_utt.sum()
    for batch in np.array_split(np.arange(utterances), 4):  # few big batches: fast to write
        n = per_utt[batch]
        writer.append(
            batch, n, (rng.standard_normal((n.sum(), dim), np.float32) for _ in range(layers)), 50.0
        )
    return writer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=13)
    parser.add_argument("--frames", type=int, default=13570)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--utterances", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "store.zarr"
        with locked(path):
            writer = build(path, args.layers, args.frames, args.dim, args.utterances)
            start = time.perf_counter()
            writer.finish()
            finish = time.perf_counter() - start
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        inventory.forget(path)
        start = time.perf_counter()
        open_store(path)
        first = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(10):
            open_store(path)
        later = (time.perf_counter() - start) / 10
        start = time.perf_counter()
        for _ in range(10):
            open_store(path, verify=False)
        bare = (time.perf_counter() - start) / 10
        files = len(list(path.rglob("*")))
    print(
        f"store: {size / 1e6:.0f} MB in {files} files ({args.layers} layers x {args.frames} frames x {args.dim})"
    )
    print(f"finish (inventory, CRC-32 of every file): {finish:.2f} s")
    print(
        f"first open in a process (full check):     {first:.2f} s ({size / 1e6 / first:.0f} MB/s)"
    )
    print(f"later opens (stat of every file):         {later * 1e3:.1f} ms")
    print(f"open without the check (xr.open_zarr):    {bare * 1e3:.1f} ms")
    print(
        f"load average: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}"
    )


if __name__ == "__main__":
    main()
