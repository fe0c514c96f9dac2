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
per hour of audio and per checkpoint; the load average beside them. Run it nice'd on a shared machine:

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/real_size.py --minutes 3 --checkpoints 1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RATE, FILE_SECONDS, PHONE_SECONDS = 16000, 15.0, 0.08


def build(
    out: Path, minutes: float, checkpoints: int, speakers: int, phones: int
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
    paths = []
    for step in range(1, checkpoints + 1):
        torch.manual_seed(step)
        model = transformers.Wav2Vec2Model(transformers.Wav2Vec2Config())  # base size, random
        path = out / "run" / f"checkpoint-{1000 * step}"
        model.save_pretrained(path)
        paths.append(path)
    return items, wavs, paths


def child(args: argparse.Namespace) -> None:
    from analysis.gridding import abx_fast_path
    from probes.models import as_layered_model
    from probes.sources import AbxSet

    start, cpu = time.perf_counter(), time.process_time()
    for path in json.loads(args.paths):
        layers = list(range(13))
        if args.mode == "spill":
            errors = abx_fast_path.abx_layers(path, layers, checkpoint=path, items=args.items,
                                              wavs=args.wavs)  # fmt: skip
            abx_fast_path.forget_features()
        else:
            layered = as_layered_model(path)
            every = abx_fast_path.activations_in_memory(
                layered, AbxSet(args.items, args.wavs), layers
            )
            lengths = dict(zip(every[0].names, every[0].lengths.tolist(), strict=True))
            prepared = abx_fast_path.prepared_for(Path(args.items), lengths, 50.0, {})
            errors = [float(prepared.score(every[layer])) for layer in layers]
        assert len(errors) == 13
    status = Path("/proc/self/status").read_text()
    peak = int(status.split("VmHWM:")[1].split()[0]) * 1024
    print(json.dumps({"wall": time.perf_counter() - start, "cpu": time.process_time() - cpu,
                      "peak": peak}))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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
    parser.add_argument("--modes", default="spill,memory")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--items", help=argparse.SUPPRESS)
    parser.add_argument("--wavs", help=argparse.SUPPRESS)
    parser.add_argument("--paths", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    out = Path(args.out)
    items, wavs, paths = build(out, args.minutes, args.checkpoints, args.speakers, args.phones)
    hours = len(list(wavs.rglob("*.flac"))) * FILE_SECONDS / 3600
    n_items = len(items.read_text().splitlines()) - 1
    print(f"{hours * 60:.1f} min of audio, {n_items} items, {args.checkpoints} checkpoint(s), "
          f"13 layers x 768, within speaker / within context")  # fmt: skip
    for mode in args.modes.split(","):
        command = [sys.executable, __file__, "--child", "--mode", mode, "--items", str(items),
                   "--wavs", str(wavs), "--paths", json.dumps([str(p) for p in paths])]  # fmt: skip
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode:
            sys.exit(done.stderr)
        result = json.loads(done.stdout.strip().splitlines()[-1])
        load = os.getloadavg()[0]
        per_hour = result["wall"] / hours / args.checkpoints
        print(f"{mode:6s} wall {result['wall']:7.1f} s  cpu {result['cpu']:7.1f} s  "
              f"peak RSS {result['peak'] / 2**30:5.2f} GiB  "
              f"({per_hour:7.0f} s per hour of audio per checkpoint; load {load:.2f}, "
              f"{os.environ.get('OMP_NUM_THREADS', 'all')} threads)", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
