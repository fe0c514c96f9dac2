"""The paper's ABX workload at a stated fraction of its size: time and peak memory per hour of audio.

Builds, in --out, LibriSpeech-like audio (speaker/chapter/*.flac, 15 s files, synthetic: tones of
random pitch per phone under noise; --phones of them, 10 by default so that
within-context cells exist in minutes of audio) with a dense item file (one item per 80 ms phone, prev/next
phone contexts, 185 items per file as the issue's 1-hour set: 240 files, 44,400 items), and a
wav2vec 2.0 base-size model with random weights saved as `checkpoint-<step>/` (save_pretrained).
Then scores every layer (0..12) of each checkpoint, within speaker and context, with the grid's ABX
fast path (analysis/gridding/abx_fast_path.py), each mode in its own process:

- ``spill``: the fast path as it is (each layer spilled to disk during the forward pass, scored one
  at a time);
- ``memory``: every layer held in memory at once (``activations_in_memory``), the path before
  issue 22, for comparison.

Prints one line per mode: wall seconds, CPU seconds, peak resident memory (VmHWM of the child), and
per hour of audio and per checkpoint; the load average beside them. Two more modes (not in the
default ``--modes``):

- ``dask``: the grid's dask.distributed fan-out (`sslvgs grid RUN --workers N`: a LocalCluster of N
  single-threaded worker processes, one task per checkpoint), the same within/within ABX grid (every
  checkpoint, every layer) with each N of ``--dask-workers`` (1,2), each a whole process after an
  untimed warm-up (Numba's cache) and with the grid's cache removed; prints each wall time, the ratio
  of the first to each, and whether the grids agree. Use several checkpoints (--checkpoints 4) and,
  for a quick run, ``--model small`` (a 4-layer, 64-d wav2vec 2.0 with random weights);
- ``float16``: the first checkpoint's every layer extracted with `probes.extract` into a store of
  float32 and one of float16 (each in its own process), then every layer scored from each store in
  the four conditions (within/across speaker x within/any context; each dtype in its own process);
  prints the absolute difference of the ABX errors per layer and condition, each store's size on
  disk, each process's time and peak memory. A process that meets a cold Numba cache compiles the
  kernels it needs (the float32 scoring runs first), so time it on a second run.

Run it nice'd on a shared machine:

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/real_size.py --minutes 3 --checkpoints 1
    OMP_NUM_THREADS=1 nice -n 15 python benchmarks/real_size.py --model small --minutes 1 \\
        --checkpoints 4 --modes dask,float16                   # toy size: about a minute or two
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RATE, FILE_SECONDS, PHONE_SECONDS = 16000, 15.0, 0.08
SMALL = dict(
    hidden_size=64, num_hidden_layers=4, num_attention_heads=2, intermediate_size=128,
    conv_dim=(32,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
    feat_extract_norm="layer", conv_bias=True,
)  # fmt: skip
CONDITIONS = ("within/within", "across/within", "within/any", "across/any")


def build(
    out: Path, minutes: float, checkpoints: int, speakers: int, phones: int, model: str = "base"
) -> tuple[Path, Path, list]:
    import soundfile
    import torch
    import transformers

    rng = np.random.default_rng(0)
    wavs, items = out / "LibriSpeech" / "dev-clean", out / "items.item"
    files = max(speakers, int(round(minutes * 60 / FILE_SECONDS)))
    per_file = int(FILE_SECONDS / PHONE_SECONDS) - 2
    pitches = rng.uniform(100, 900, phones)
    lines = ["#file onset offset #phone prev-phone next-phone speaker\n"]
    n = int(FILE_SECONDS * RATE)
    t = np.arange(n) / RATE
    for f in range(files):
        speaker, chapter = f % speakers, f // speakers
        name = f"{speaker}-{chapter}-{f:04d}"
        folder = wavs / str(speaker) / str(chapter)
        folder.mkdir(parents=True, exist_ok=True)
        sequence = rng.integers(0, phones, per_file + 2)
        pitch = pitches[sequence[np.minimum((t / PHONE_SECONDS).astype(int), per_file + 1)]]
        wave = np.sin(2 * np.pi * pitch * (1 + 0.02 * speaker) * t) + 0.3 * rng.standard_normal(n)
        soundfile.write(folder / f"{name}.flac", (0.2 * wave).astype(np.float32), RATE)
        for k in range(1, per_file + 1):
            onset = k * PHONE_SECONDS
            lines.append(f"{name} {onset:.2f} {onset + PHONE_SECONDS:.2f} p{sequence[k]} "
                         f"p{sequence[k - 1]} p{sequence[k + 1]} s{speaker}\n")  # fmt: skip
    items.write_text("".join(lines))
    transformers.logging.disable_progress_bar()
    paths, run = [], out / f"run-{model}"
    shutil.rmtree(run, ignore_errors=True)  # no checkpoint or grid cache of an earlier build
    config = transformers.Wav2Vec2Config(**(SMALL if model == "small" else {}))  # base: defaults
    for step in range(1, checkpoints + 1):
        torch.manual_seed(step)
        path = run / f"checkpoint-{1000 * step}"
        transformers.Wav2Vec2Model(config).save_pretrained(path)  # random weights
        paths.append(path)
    return items, wavs, paths


def _layers(path: str | Path) -> list[int]:
    import transformers

    return list(range(transformers.Wav2Vec2Config.from_pretrained(path).num_hidden_layers + 1))


def child(args: argparse.Namespace) -> None:
    from analysis.gridding import abx_fast_path
    from probes.models import as_layered_model
    from probes.sources import abx_set

    if args.mode.startswith("float16"):
        return float16_child(args)
    start, cpu = time.perf_counter(), time.process_time()
    for path in json.loads(args.paths):
        layers = _layers(path)
        if args.mode == "spill":
            errors = abx_fast_path.abx_layers(path, layers, checkpoint=path, items=args.items,
                                              wavs=args.wavs)  # fmt: skip
            abx_fast_path.forget_features()
        else:
            layered = as_layered_model(path)
            every = abx_fast_path.activations_in_memory(
                layered, abx_set(args.items, args.wavs), layers
            )
            lengths = dict(zip(every[0].names, every[0].lengths.tolist(), strict=True))
            prepared = abx_fast_path.prepared_for(Path(args.items), lengths, 50.0, {})
            errors = [float(prepared.score(every[layer])) for layer in layers]
        assert len(errors) == len(layers)
    print(json.dumps({"wall": time.perf_counter() - start, "cpu": time.process_time() - cpu,
                      "peak": _peak()}))  # fmt: skip


def _peak() -> int:
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) * 1024


def float16_child(args: argparse.Namespace) -> None:
    """``float16-extract-<dtype>``: every layer into a store of that dtype; ``float16-score-<dtype>``:
    every layer of that store in each condition."""
    import probes

    _, stage, dtype = args.mode.split("-")
    store = Path(args.out) / f"store-{dtype}.zarr"
    path = json.loads(args.paths)[0]
    start, cpu, result = time.perf_counter(), time.process_time(), {}
    if stage == "extract":
        shutil.rmtree(store, ignore_errors=True)
        probes.extract(path, args.items, "all", store, wavs=args.wavs, dtype=dtype, progress=False)
        result["bytes"] = sum(f.stat().st_size for f in store.rglob("*") if f.is_file())
    else:
        for condition in CONDITIONS:
            speaker, context = condition.split("/")
            errors = probes.abx(str(store), "all", args.items, speaker=speaker, context=context,
                                progress=False)  # fmt: skip
            result[condition] = errors.values.tolist()
    result.update(wall=time.perf_counter() - start, cpu=time.process_time() - cpu, peak=_peak())
    print(json.dumps(result))


def _child(mode: str, items: Path, wavs: Path, paths: list, out: Path) -> dict:
    command = [sys.executable, __file__, "--child", "--mode", mode, "--items", str(items),
               "--wavs", str(wavs), "--paths", json.dumps([str(p) for p in paths]),
               "--out", str(out)]  # fmt: skip
    done = subprocess.run(command, env=_env(), capture_output=True, text=True)
    if done.returncode:
        sys.exit(done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=str(ROOT), TQDM_DISABLE="1")


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def float16(items: Path, wavs: Path, paths: list, out: Path) -> None:
    """float32 and float16 stores of the first checkpoint: errors' |diff|, disk, memory, time."""
    runs = {}
    for stage in ("extract", "score"):
        for dtype in ("float32", "float16"):
            runs[stage, dtype] = r = _child(f"float16-{stage}-{dtype}", items, wavs, paths, out)
            size = f", store {r['bytes'] / 2**20:.1f} MiB" if "bytes" in r else ""
            print(f"float16: {stage:7s} {dtype}: wall {r['wall']:7.1f} s  cpu {r['cpu']:7.1f} s  "
                  f"peak RSS {r['peak'] / 2**30:5.2f} GiB{size}; load {_load()}", flush=True)  # fmt: skip
    full, half = runs["score", "float32"], runs["score", "float16"]
    for condition in CONDITIONS:
        diff = np.abs(np.subtract(full[condition], half[condition]))
        cells = " ".join(f"{layer}:{d:.1e}" for layer, d in enumerate(diff))
        print(f"float16: {condition:14s} |error float16 - float32| max {diff.max():.2e}, per "
              f"layer {cells}; load {_load()}")  # fmt: skip
    saved = 1 - runs["extract", "float16"]["bytes"] / runs["extract", "float32"]["bytes"]
    print(
        f"float16: store {saved:.0%} smaller on disk; scoring peak RSS "
        f"{(full['peak'] - half['peak']) / 2**20:+.0f} MiB (float32 - float16)"
    )


def dask_scaling(items: Path, wavs: Path, paths: list, workers: list[int]) -> None:
    """The same ABX grid through `sslvgs grid --workers N` for each N; whole-process wall times."""
    run = Path(paths[0]).parent
    command = [sys.executable, "-m", "analysis.cli", "grid", str(run), "--items", str(items),
               "--wavs", str(wavs), "--speaker", "within", "--context", "within",
               "--no-progress"]  # fmt: skip
    one = ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    env = _env() | dict.fromkeys(one, "1")  # one thread per worker (and in the serial path)
    warm = ["--workers", "0", "--epochs", str(int(Path(paths[0]).name.split("-")[1]))]
    subprocess.run([*command, *warm, "--layers", "0"], env=env, check=True, capture_output=True)
    walls, grids = {}, {}
    for n in workers:
        shutil.rmtree(run / "analysis", ignore_errors=True)  # every cell computed again
        grid_file = run.parent / f"grid-workers{n}.csv"
        start = time.perf_counter()
        done = subprocess.run([*command, "--workers", str(n), "--out", str(grid_file)], env=env,
                              capture_output=True, text=True)  # fmt: skip
        walls[n] = time.perf_counter() - start
        if done.returncode:
            sys.exit(done.stderr)
        grids[n] = np.loadtxt(grid_file, delimiter=",", skiprows=1, ndmin=2)  # step, layer, value
        same = np.allclose(grids[n], grids[workers[0]], rtol=1e-5, atol=1e-6)
        layers, ratio = len(set(grids[n][:, 1])), walls[workers[0]] / walls[n]
        print(f"dask: {n} worker(s) x 1 thread: wall {walls[n]:7.1f} s for {len(paths)} checkpoints "
              f"x {layers} layers; speed-up {ratio:.2f}x over {workers[0]} worker(s); grid "
              f"{'the same' if same else 'DIFFERS'}; load {_load()}", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="/tmp/sslvgs-real-size")
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--checkpoints", type=int, default=1)
    parser.add_argument("--speakers", type=int, default=4)
    parser.add_argument(
        "--phones",
        type=int,
        default=10,
        help="phone inventory (fewer: contexts repeat in less audio)",
    )
    parser.add_argument("--model", choices=("base", "small"), default="base")
    parser.add_argument("--modes", default="spill,memory", help="spill, memory, dask, float16")
    parser.add_argument("--dask-workers", default="1,2", help="worker counts of the dask mode")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--items", help=argparse.SUPPRESS)
    parser.add_argument("--wavs", help=argparse.SUPPRESS)
    parser.add_argument("--paths", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    out = Path(args.out)
    items, wavs, paths = build(
        out, args.minutes, args.checkpoints, args.speakers, args.phones, args.model
    )
    hours = len(list(wavs.rglob("*.flac"))) * FILE_SECONDS / 3600
    n_items = len(items.read_text().splitlines()) - 1
    print(f"{hours * 60:.1f} min of audio, {n_items} items, {args.checkpoints} checkpoint(s), "
          f"{len(_layers(paths[0]))} layers of the {args.model} model; "
          f"{os.environ.get('OMP_NUM_THREADS', 'all')} threads")  # fmt: skip
    for mode in args.modes.split(","):
        if mode == "dask":
            dask_scaling(items, wavs, paths, [int(n) for n in args.dask_workers.split(",")])
            continue
        if mode == "float16":
            float16(items, wavs, paths, out)
            continue
        result = _child(mode, items, wavs, paths, out)
        per_hour = result["wall"] / hours / args.checkpoints
        print(f"{mode:6s} wall {result['wall']:7.1f} s  cpu {result['cpu']:7.1f} s  "
              f"peak RSS {result['peak'] / 2**30:5.2f} GiB  "
              f"({per_hour:7.0f} s per hour of audio per checkpoint, within speaker / within "
              f"context; load {_load()})", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
