"""Time sslvgs's ABX engine against fastabx 0.9.0 on the same synthetic set, in one run.

The set (issue 6): 20,000 items in 400 files, 20 speakers, 11 phones, dim 256, 1 to 8 frames per phone
at 50 Hz, random features; no subsampling. Each (tool, condition) runs in its own subprocess, so the
peak resident memory reported is that run's (ru_maxrss; "+N" is the growth after the imports: fastabx's
import loads torch, sslvgs's reader of item files does not), and both tools get the same thread
count. Times are end to end after the imports: item file + feature directory in, score out (feature
loading included); CPU seconds are printed beside wall seconds because on a shared machine they are
the steadier figure.

fastabx needs Python >= 3.12, so it runs from its own virtual environment:
    ~/.pyenv/versions/3.12.*/bin/python -m venv /tmp/fastabx-venv
    /tmp/fastabx-venv/bin/pip install fastabx==0.9.0
and is found with --fastabx-python or $FASTABX_PYTHON (default /tmp/fastabx-venv/bin/python); without
it the table has sslvgs only, with a note.

    .venv/bin/python benchmarks/abx_vs_fastabx.py [--out DIR] [--threads 2] [--conditions within/within,...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np

CONDITIONS = ["within/within", "across/within", "within/any", "across/any"]
PHONES = [f"p{i:02d}" for i in range(11)]


def build_set(out: Path, n_files=400, items_per_file=50, n_speakers=20, dim=256, seed=0) -> Path:
    """Write features/<file>.npy and items.item; returns the item file."""
    rng = np.random.default_rng(seed)
    features = out / "features"
    features.mkdir(parents=True, exist_ok=True)
    lines = ["#file onset offset #phone prev-phone next-phone speaker"]
    for f in range(n_files):
        name, speaker = f"file{f:04d}", f"spk{f % n_speakers:02d}"
        phones = rng.choice(PHONES, items_per_file)
        frames = rng.integers(1, 9, items_per_file)  # 1 to 8 frames per phone
        bounds = np.concatenate([[0], np.cumsum(frames)])
        for k in range(items_per_file):
            prev = phones[k - 1] if k else "SIL"
            nxt = phones[k + 1] if k + 1 < items_per_file else "SIL"
            onset, offset = bounds[k] * 0.02, bounds[k + 1] * 0.02
            lines.append(f"{name} {onset:.2f} {offset:.2f} {phones[k]} {prev} {nxt} {speaker}")
        np.save(features / f"{name}.npy", rng.standard_normal((bounds[-1], dim)).astype(np.float32))
    item = out / "items.item"
    item.write_text("\n".join(lines) + "\n")
    return item


SSLVGS_RUN = """
import json, resource, sys, time
from probes.abx_engine import load_feature_dir, score
from training.data import read_items
base_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # after imports
t0, c0 = time.perf_counter(), time.process_time()
items = read_items(sys.argv[1])
features = load_feature_dir(sys.argv[2], items["file"].unique().tolist())
result = score(features, items, speaker=sys.argv[3], context=sys.argv[4])
seconds = time.perf_counter() - t0
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"score": float(result), "seconds": seconds, "cpu_s": time.process_time() - c0,
                  "peak_mib": usage.ru_maxrss / 1024, "base_mib": base_mib}))
"""

FASTABX_RUN = """
import json, resource, sys, time
import numpy as np, torch
torch.set_num_threads(int(sys.argv[5]))
from fastabx import zerospeech_abx
base_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # after imports
t0, c0 = time.perf_counter(), time.process_time()
score = zerospeech_abx(sys.argv[1], sys.argv[2], max_size_group=None, max_x_across=None,
                       speaker=sys.argv[3], context=sys.argv[4], distance="angular", frequency=50,
                       feature_maker=lambda p: torch.from_numpy(np.load(p)), extension=".npy")
seconds = time.perf_counter() - t0
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"score": float(score), "seconds": seconds, "cpu_s": time.process_time() - c0,
                  "peak_mib": usage.ru_maxrss / 1024, "base_mib": base_mib}))
"""


def run(python: str, code: str, args: list[str], threads: int, cwd: Path | None = None) -> dict:
    env = dict(
        os.environ, OMP_NUM_THREADS=str(threads), NUMBA_NUM_THREADS=str(threads), TQDM_DISABLE="1"
    )
    env["OPENBLAS_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    done = subprocess.run(
        [python, "-c", textwrap.dedent(code), *args, str(threads)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{python} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="where to build the set (default: a temp dir)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--conditions", default=",".join(CONDITIONS))
    parser.add_argument(
        "--fastabx-python", default=os.environ.get("FASTABX_PYTHON", "/tmp/fastabx-venv/bin/python")
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the table as JSON here")
    args = parser.parse_args(argv)
    repo = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        item = build_set(out)
        features = out / "features"
        have_fastabx = Path(args.fastabx_python).exists()
        if not have_fastabx:
            print(
                f"note: fastabx not found at {args.fastabx_python}: timing sslvgs only (see --fastabx-python)"
            )
        # Warm the Numba cache once, so no timed run pays for compilation.
        run(
            sys.executable,
            SSLVGS_RUN,
            [str(item), str(features), "within", "within"],
            args.threads,
            repo,
        )
        rows = []
        for condition in args.conditions.split(","):
            speaker, context = condition.split("/")
            ours = run(
                sys.executable,
                SSLVGS_RUN,
                [str(item), str(features), speaker, context],
                args.threads,
                repo,
            )
            theirs = (
                run(
                    args.fastabx_python,
                    FASTABX_RUN,
                    [str(item), str(features), speaker, context],
                    args.threads,
                )
                if have_fastabx
                else None
            )
            rows.append({"condition": condition, "sslvgs": ours, "fastabx": theirs})
            _print_row(rows[-1])
        if args.json:
            args.json.write_text(json.dumps(rows, indent=2))
    return 0


def _print_row(row: dict) -> None:
    ours, theirs = row["sslvgs"], row["fastabx"]
    line = (
        f"{row['condition']:14s} sslvgs {ours['seconds']:7.2f} s (cpu {ours['cpu_s']:7.2f}) "
        f"{ours['peak_mib']:6.0f} MiB (+{ours['peak_mib'] - ours['base_mib']:4.0f}) score {ours['score']:.9f}"
    )
    if theirs:
        line += (
            f" | fastabx {theirs['seconds']:7.2f} s (cpu {theirs['cpu_s']:7.2f}) {theirs['peak_mib']:6.0f} MiB "
            f"(+{theirs['peak_mib'] - theirs['base_mib']:4.0f}) score {theirs['score']:.9f}"
            f" | {theirs['seconds'] / ours['seconds']:5.1f}x wall, {theirs['cpu_s'] / ours['cpu_s']:5.1f}x cpu,"
            f" |diff| {abs(ours['score'] - theirs['score']):.1e}"
        )
    print(line, flush=True)


if __name__ == "__main__":
    sys.exit(main())
