"""Time sslvgs's ABX engine against fastabx 0.9.0 on the same synthetic set, in one run.

Two timings per (tool, condition), each in its own process: *whole process*, as a user's shell loop
sees it (`python -m analysis.cli abx FEATURES ITEM --json`, i.e. `sslvgs abx`, against a Python process
that imports fastabx and calls `zerospeech_abx`: start-up and imports included on both sides; wall from
outside, CPU and peak memory of the child from wait4), and *after the imports* (the work alone, below).
Beside each condition: the float32 FLOP floor of its frame products (2 x dim x the frame pairs its
cells need, each pair once, at this machine's sgemm rate for the thread count and dim, measured in
the same run) and how far each tool's times are from it (its whole process, and sslvgs's after-import
time); each process's peak memory is beside its time.

The set: by default 20,000 items in 400 files, 20 speakers, 11 phones, dim 256, 1 to 8 frames per
phone at 50 Hz, random features; no subsampling. --files, --items-per-file, --speakers, --phones and
--dim change it; dev-clean's size (2,703 files, 40 speakers, a dense phone item file of about 190k
items, 768-d as wav2vec 2.0 base) is

    --files 2703 --items-per-file 70 --speakers 40 --phones 40 --dim 768     # 189,210 items

(about 2.5 GB of .npy features). --timings whole skips the after-import runs (each condition then
runs once per tool), for sizes where fastabx takes long; --no-fastabx times sslvgs alone. Each (tool, condition) runs in its own subprocess, so the
peak resident memory reported is that run's (ru_maxrss; "+N" is the growth after the imports: fastabx's
import loads torch, sslvgs's reader of item files does not), and both tools get the same thread
count. Times are end to end after the imports: item file + feature directory in, score out (feature
loading included); CPU seconds are printed beside wall seconds because on a shared machine they are
the steadier figure.

fastabx needs Python >= 3.12, so it runs from its own virtual environment:
    ~/.pyenv/versions/3.12.*/bin/python -m venv /root/.cache/fastabx-venv
    /root/.cache/fastabx-venv/bin/pip install fastabx==0.9.0
and is found with --fastabx-python or $FASTABX_PYTHON (default: the first of
/root/.cache/fastabx-venv/bin/python and /tmp/fastabx-venv/bin/python that exists); without it the
table has sslvgs only, with a note.

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
FASTABX_PYTHONS = ("/root/.cache/fastabx-venv/bin/python", "/tmp/fastabx-venv/bin/python")


def build_set(
    out: Path, n_files=400, items_per_file=50, n_speakers=20, dim=256, seed=0, n_phones=11
) -> Path:
    """Write features/<file>.npy and items.item; returns the item file (a finished set is reused:
    the same arguments give the same bytes)."""
    item, stamp = out / "items.item", out / "set.json"
    wanted = [n_files, items_per_file, n_speakers, dim, seed, n_phones]
    if item.exists() and stamp.exists() and json.loads(stamp.read_text()) == wanted:
        return item
    if (out / "features").is_dir():  # another set's files
        for old in (out / "features").glob("*.npy"):
            old.unlink()
    phone_names = [f"p{i:02d}" for i in range(n_phones)]
    rng = np.random.default_rng(seed)
    features = out / "features"
    features.mkdir(parents=True, exist_ok=True)
    lines = ["#file onset offset #phone prev-phone next-phone speaker"]
    for f in range(n_files):
        name, speaker = f"file{f:04d}", f"spk{f % n_speakers:02d}"
        phones = rng.choice(phone_names, items_per_file)
        frames = rng.integers(1, 9, items_per_file)  # 1 to 8 frames per phone
        bounds = np.concatenate([[0], np.cumsum(frames)])
        for k in range(items_per_file):
            prev = phones[k - 1] if k else "SIL"
            nxt = phones[k + 1] if k + 1 < items_per_file else "SIL"
            onset, offset = bounds[k] * 0.02, bounds[k + 1] * 0.02
            lines.append(f"{name} {onset:.2f} {offset:.2f} {phones[k]} {prev} {nxt} {speaker}")
        np.save(features / f"{name}.npy", rng.standard_normal((bounds[-1], dim)).astype(np.float32))
    item.write_text("\n".join(lines) + "\n")
    stamp.write_text(json.dumps(wanted))
    return item


SSLVGS_RUN = """
import json, resource, sys, time
from probes.abx_engine import open_feature_dir, score
from training.data import read_item_columns
base_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # after imports
t0, c0 = time.perf_counter(), time.process_time()
items = read_item_columns(sys.argv[1])  # as `sslvgs abx` reads them: numpy columns, no pandas
features = open_feature_dir(sys.argv[2], list(dict.fromkeys(items["file"].tolist())))
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


FASTABX_PROCESS = """
import sys
import numpy as np, torch
torch.set_num_threads(int(sys.argv[5]))
from fastabx import zerospeech_abx
score = zerospeech_abx(sys.argv[1], sys.argv[2], max_size_group=None, max_x_across=None,
                       speaker=sys.argv[3], context=sys.argv[4], distance="angular", frequency=50,
                       feature_maker=lambda p: torch.from_numpy(np.load(p)), extension=".npy")
print(float(score))
"""


def _env(threads: int) -> dict:
    env = dict(
        os.environ, OMP_NUM_THREADS=str(threads), NUMBA_NUM_THREADS=str(threads), TQDM_DISABLE="1"
    )
    env["OPENBLAS_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    return env


def whole_process(command: list[str], threads: int, cwd: Path | None = None) -> dict:
    """Run ``command``; wall seconds from outside, CPU seconds and peak MiB of the child (wait4)."""
    import time

    t0 = time.perf_counter()
    child = subprocess.Popen(
        command, env=_env(threads), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out = child.stdout.read()
    err = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - t0
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise RuntimeError(f"{command[:4]} failed:\n{err.decode()[-3000:]}")
    text = out.decode().strip().splitlines()[-1]
    score = json.loads(text)["score"] if text.startswith("{") else float(text)
    return {"score": score, "seconds": seconds, "cpu_s": usage.ru_utime + usage.ru_stime,
            "peak_mib": usage.ru_maxrss / 1024}  # fmt: skip


def sgemm_rate(threads: int, n: int = 2048, dim: int = 256, repeats: int = 5) -> float:
    """float32 FLOP/s of a [n, dim] x [dim, n] product on ``threads`` BLAS threads (best of repeats)."""
    import time

    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, dim)).astype(np.float32)
    out = np.empty((n, n), np.float32)
    best = float("inf")
    with threadpool_limits(limits=threads):
        for _ in range(repeats):
            t0 = time.perf_counter()
            np.dot(a, a.T, out=out)
            best = min(best, time.perf_counter() - t0)
    return 2.0 * n * n * dim / best


def frame_pairs(item: Path, features: Path, speaker: str, context: str) -> tuple[int, int]:
    """(frame pairs the condition's cells need, each pair of items once; feature dim)."""
    from probes.abx_engine import open_feature_dir, prepare
    from training.data import read_items

    items = read_items(item)
    files = open_feature_dir(features, items["file"].unique().tolist())  # headers only
    prepared = prepare(items, files, speaker=speaker, context=context)
    layout, offsets = prepared.layout, prepared.offsets
    group_frames = np.diff(offsets[layout.group_start]).astype(np.int64)
    total = 0
    for g in range(len(layout.by_start) - 1):
        h0, h1 = int(layout.by_start[g]), int(layout.by_start[g + 1])
        frames = group_frames[h0:h1]
        if layout.condition.is_symmetric:  # distinct items of one group
            lengths = np.diff(offsets[layout.group_start[h0] : layout.group_start[h1] + 1])
            total += int((frames**2).sum() - (lengths**2).sum()) // 2
        else:  # items of two groups that may meet (across values all differ), each pair once
            allowed = np.triu(layout.allowed(np.arange(h0, h1), np.arange(h0, h1)), 1)
            total += int(frames @ allowed @ frames)
    return total, files.dim


def run(python: str, code: str, args: list[str], threads: int, cwd: Path | None = None) -> dict:
    env = _env(threads)
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
    default_fastabx = next((p for p in FASTABX_PYTHONS if Path(p).exists()), FASTABX_PYTHONS[0])
    parser.add_argument(
        "--fastabx-python", default=os.environ.get("FASTABX_PYTHON", default_fastabx)
    )
    parser.add_argument(
        "--no-fastabx", action="store_true", help="time sslvgs only (quick iterations)"
    )
    parser.add_argument("--files", type=int, default=400)
    parser.add_argument("--items-per-file", type=int, default=50)
    parser.add_argument("--speakers", type=int, default=20)
    parser.add_argument("--phones", type=int, default=11)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument(
        "--timings", default="whole,after", help="whole (processes), after (the imports) or both"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the table as JSON here")
    args = parser.parse_args(argv)
    repo = Path(__file__).resolve().parents[1]
    timings = args.timings.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        item = build_set(out, args.files, args.items_per_file, args.speakers, args.dim,
                         n_phones=args.phones)  # fmt: skip
        n_items = len(item.read_text().splitlines()) - 1
        print(f"{n_items} items in {args.files} files, {args.speakers} speakers, {args.phones} "
              f"phones, dim {args.dim}; {args.threads} thread(s)")  # fmt: skip
        features = out / "features"
        have_fastabx = Path(args.fastabx_python).exists() and not args.no_fastabx
        if args.no_fastabx:
            print("note: --no-fastabx: timing sslvgs only")
        elif not have_fastabx:
            print(
                f"note: fastabx not found at {args.fastabx_python}: timing sslvgs only (see --fastabx-python)"
            )
        # Warm the Numba cache once, on a small set of the same shape, so no timed run pays for
        # compilation (scoring the whole set here would cost minutes for nothing).
        warm = build_set(out / "warm", n_files=16, n_speakers=4, dim=args.dim)
        for condition in CONDITIONS:
            run(sys.executable, SSLVGS_RUN, [str(warm), str(warm.parent / "features"),
                *condition.split("/")], args.threads, repo)  # fmt: skip
        rate = sgemm_rate(args.threads, dim=args.dim)
        print(f"sgemm: {rate / 1e9:.1f} GFLOP/s on {args.threads} thread(s); load {_load()}")
        rows = []
        for condition in args.conditions.split(","):
            speaker, context = condition.split("/")
            where = [str(item), str(features), speaker, context]
            pairs, dim = frame_pairs(item, features, speaker, context)
            row = {"condition": condition, "floor_s": 2.0 * dim * pairs / rate,
                   "frame_pairs": pairs, "load": _load()}  # fmt: skip
            if "after" in timings:
                row["sslvgs"] = run(sys.executable, SSLVGS_RUN, where, args.threads, repo)
            command = [sys.executable, "-m", "analysis.cli", "abx", str(features), str(item),
                       "--speaker", speaker, "--context", context, "--json"]  # fmt: skip
            if "whole" in timings:
                row["sslvgs_process"] = whole_process(command, args.threads, repo)
            if have_fastabx and "after" in timings:
                row["fastabx"] = run(args.fastabx_python, FASTABX_RUN, where, args.threads)
            if have_fastabx and "whole" in timings:
                code = textwrap.dedent(FASTABX_PROCESS)
                command = [args.fastabx_python, "-c", code, *where, str(args.threads)]
                row["fastabx_process"] = whole_process(command, args.threads)
            rows.append(row)
            _print_row(rows[-1])
        if args.json:
            args.json.write_text(json.dumps(rows, indent=2))
    return 0


def _load() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def _floors(seconds: float, floor: float) -> str:
    return f"{seconds / floor:7.2f}x the floor" if floor > 0 else "(no frame products)"


def _print_row(row: dict) -> None:
    floor = row["floor_s"]
    print(
        f"{row['condition']:14s} frame products floor {floor:.3g} s "
        f"({row['frame_pairs'] / 1e6:.0f} M frame pairs); load {row['load']} -> {_load()}"
    )
    whole, whole_theirs = row.get("sslvgs_process"), row.get("fastabx_process")
    if whole:
        line = (
            f"{'':14s} whole process: sslvgs {whole['seconds']:7.2f} s (cpu {whole['cpu_s']:7.2f}) "
            f"{whole['peak_mib']:6.0f} MiB, {_floors(whole['seconds'], floor)}"
        )
        if whole_theirs:
            line += (
                f" | fastabx {whole_theirs['seconds']:7.2f} s (cpu {whole_theirs['cpu_s']:7.2f}) "
                f"{whole_theirs['peak_mib']:6.0f} MiB, {_floors(whole_theirs['seconds'], floor)}"
                f" | {whole_theirs['seconds'] / whole['seconds']:5.1f}x wall, "
                f"{whole_theirs['cpu_s'] / whole['cpu_s']:5.1f}x cpu, |diff| "
                f"{abs(whole['score'] - whole_theirs['score']):.1e}"
            )
        print(line)
    ours, theirs = row.get("sslvgs"), row.get("fastabx")
    if ours:
        line = (
            f"{'':14s} after imports: sslvgs {ours['seconds']:7.2f} s (cpu {ours['cpu_s']:7.2f}) "
            f"{ours['peak_mib']:6.0f} MiB (+{ours['peak_mib'] - ours['base_mib']:4.0f}) "
            f"{_floors(ours['seconds'], floor)}, score {ours['score']:.9f}"
        )
        if theirs:
            line += (
                f" | fastabx {theirs['seconds']:7.2f} s (cpu {theirs['cpu_s']:7.2f}) "
                f"{theirs['peak_mib']:6.0f} MiB (+{theirs['peak_mib'] - theirs['base_mib']:4.0f}) "
                f"score {theirs['score']:.9f} | {theirs['seconds'] / ours['seconds']:5.1f}x wall, "
                f"{theirs['cpu_s'] / ours['cpu_s']:5.1f}x cpu, |diff| "
                f"{abs(ours['score'] - theirs['score']):.1e}"
            )
        print(line)
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
