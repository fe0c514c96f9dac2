"""Kill sslvgs commands at random instants, run them again, and compare with the uninterrupted result.

For each target, the command first runs uninterrupted (the reference, and its duration T); then N
times: a fresh start, a SIGKILL to its whole process group at an instant drawn uniformly in
[0.2 s, 0.9 T], and the same command again (`train` adds --resume, which is how a killed run goes on).
Each second run is counted as

- exact: exit 0, and the result equals the reference (values, not timestamps);
- refused by name: exit 2 with one line `sslvgs CMD: error: ...` (nothing wrong was produced);
- wrong: anything else (another result, a traceback, another exit status); its output is kept.

Targets (all on one small corpus and one tiny run, built first and shared):

    extract    sslvgs extract RUN CORPUS/abx/read --out STORE --batch-size 2   (the store's values)
    train      sslvgs train CORPUS RUN --stage-epochs 2 [--resume]             (every checkpoint's
               weights and optimizer state, metrics.jsonl's epochs)
    grid       sslvgs grid RUN --probe abx --items read --layers 0,2,4         (the grid's values)
    reproduce  sslvgs reproduce OUT --quick                                    (every .csv table)

    python benchmarks/fault_injection.py --n 5 [--targets extract,grid] [--work DIR] [--seed 0]

Prints a table (target, tried, killed, exact, refused by name, wrong) and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Measure this checkout, whatever checkout the environment's editable install points at.
sys.path.insert(0, str(ROOT))
NAMED = re.compile(r"^sslvgs \w+: error: .+$")
IMAGES = 24  # the quick plan's corpus


TIMEOUT = 1800.0  # seconds a command may take (--timeout: a loaded machine needs more)


def _set_timeout(seconds: float) -> None:
    global TIMEOUT
    TIMEOUT = seconds


def sslvgs(*args: Any, timeout: float | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "analysis.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT if timeout is None else timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    )


@dataclass
class Target:
    """A command to kill: `args(trial)` its arguments, `again(trial)` the rerun's, `prepare(trial)`
    a fresh start in the trial folder, `result(trial)` what must equal the reference's."""

    name: str
    args: Callable[[Path], list[Any]]
    result: Callable[[Path], Any]
    prepare: Callable[[Path], None] = lambda trial: None
    again: Callable[[Path], list[Any]] | None = None


def store_values(path: Path) -> dict[str, Any]:
    import xarray as xr

    ds = xr.open_zarr(path, consolidated=True).load()
    names = ("activations", "utt", "time", "n_frames", "offset", "utterance")
    return {name: ds[name].values for name in names}


def run_state(run: Path) -> dict[str, Any]:
    """Every checkpoint's tensors (weights, optimizer and RNG states) and the epochs metrics.jsonl records."""
    from training.run.checkpoints import load_checkpoint
    from training.run.directory import list_checkpoints

    state = {}
    for epoch, path in list_checkpoints(run).items():
        state[epoch] = _tensors(load_checkpoint(path))
    lines = (run / "metrics.jsonl").read_text().splitlines()
    state["metrics epochs"] = [json.loads(line).get("epoch") for line in lines if line.strip()]
    return state


def _tensors(value: Any, prefix: str = "") -> dict[str, Any]:
    import torch

    if isinstance(value, torch.Tensor):
        return {prefix: value.numpy() if value.dtype != torch.bfloat16 else value.float().numpy()}
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            out.update(_tensors(item, f"{prefix}/{key}"))
        return out
    if isinstance(value, list | tuple):
        out = {}
        for index, item in enumerate(value):
            out.update(_tensors(item, f"{prefix}/{index}"))
        return out
    return {}


def tables(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*.csv"))}


def same(a: Any, b: Any) -> bool:
    import numpy as np

    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(np.asarray(a), np.asarray(b))
    return a == b


def targets(shared: Path) -> dict[str, Target]:
    corpus, run = shared / "corpus", shared / "run"

    def fresh_run_copy(trial: Path) -> None:
        shutil.copytree(run, trial / "run", ignore=shutil.ignore_patterns("probes", "analysis"))

    train_args = ["--preset", "tiny", "--stage-epochs", 2, "--eval-split", "test", "--no-progress"]
    return {
        "extract": Target(
            "extract",
            lambda t: [
                "extract",
                run,
                corpus / "abx" / "read",
                "--out",
                t / "s.zarr",
                "--batch-size",
                2,
                "--quiet",
            ],  # fmt: skip
            lambda t: store_values(t / "s.zarr"),
        ),
        "train": Target(
            "train",
            lambda t: ["train", corpus, t / "run", *train_args],
            lambda t: run_state(t / "run"),
            again=lambda t: ["train", corpus, t / "run", *train_args, "--resume"],
        ),
        "grid": Target(
            "grid",
            lambda t: [
                "grid",
                t / "run",
                "--probe",
                "abx",
                "--items",
                "read",
                "--corpus",
                corpus,
                "--layers",
                "0,2,4",
                "--out",
                t / "grid.csv",
                "--no-progress",
            ],  # fmt: skip
            lambda t: (t / "grid.csv").read_text(),
            prepare=fresh_run_copy,
        ),
        "reproduce": Target(
            "reproduce",
            lambda t: ["reproduce", t / "out", "--quick", "--no-progress"],
            lambda t: tables(t / "out"),
        ),
    }


def setup(shared: Path) -> None:
    """The corpus and the tiny run that extract and grid read (the run is train's reference too)."""
    if not (shared / "corpus" / "manifest.json").exists():
        _check(sslvgs("corpus", shared / "corpus", "--images", IMAGES, "--no-progress"))
    if not (shared / "run" / "metrics.jsonl").exists():
        _check(sslvgs("train", shared / "corpus", shared / "run", "--preset", "tiny",
                      "--stage-epochs", 2, "--eval-split", "test", "--no-progress"))  # fmt: skip


def _check(done: subprocess.CompletedProcess) -> None:
    if done.returncode != 0:
        raise SystemExit(f"setup failed: {' '.join(done.args)}\n{done.stderr}")


def trial(target: Target, folder: Path, kill_at: float, reference: Any) -> tuple[str, bool, str]:
    """One kill and rerun: (outcome, whether the kill landed, details)."""
    folder.mkdir(parents=True)
    target.prepare(folder)
    process = subprocess.Popen(
        [sys.executable, "-m", "analysis.cli", *map(str, target.args(folder))],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        start_new_session=True,  # its own process group: the kill reaches its workers too
    )
    try:
        process.wait(timeout=kill_at)
        killed = False
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        killed = True
    done = sslvgs(*(target.again or target.args)(folder))
    lines = done.stderr.strip().splitlines()
    if done.returncode == 2 and len(lines) == 1 and NAMED.match(lines[0]):
        return "refused", killed, lines[0]
    if done.returncode != 0:
        return "wrong", killed, f"exit {done.returncode}: {done.stderr[-2000:]}"
    try:
        result = target.result(folder)
    except Exception as err:  # noqa: BLE001  (an unreadable result is a wrong one)
        return "wrong", killed, f"result unreadable: {err}"
    return ("exact", killed, "") if same(result, reference) else ("wrong", killed, "differs")


def _reference(target: Target, folder: Path, reuse: bool) -> float:
    """Run the uninterrupted reference (or keep a finished one); returns its duration T."""
    stamp = folder / "duration.json"
    if reuse and stamp.exists():
        return float(json.loads(stamp.read_text())["seconds"])
    shutil.rmtree(folder.parent, ignore_errors=True)
    folder.mkdir(parents=True)
    target.prepare(folder)
    start = time.monotonic()
    _check(sslvgs(*target.args(folder)))
    duration = time.monotonic() - start
    stamp.write_text(json.dumps({"seconds": duration}))
    return duration


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5, help="kills per target")
    parser.add_argument("--targets", default="extract,train,grid", help="comma list (or all)")
    parser.add_argument("--work", help="working folder (default: a temp folder, removed)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--timeout", type=float, default=TIMEOUT, help="seconds a command may take (default 1800)"
    )
    parser.add_argument(
        "--kill-before",
        type=float,
        default=None,
        help="draw kill instants below this many seconds (default 0.9 T; a loaded reference run "
        "makes T long and the trials may end before their kill)",
    )
    parser.add_argument(
        "--reuse-reference",
        action="store_true",
        help="keep a finished reference run in --work (its result and T) instead of running it again",
    )
    args = parser.parse_args()
    _set_timeout(args.timeout)
    chosen = list(targets(Path())) if args.targets == "all" else args.targets.split(",")
    rng = random.Random(args.seed)
    work = Path(args.work or tempfile.mkdtemp(prefix="sslvgs-faults-"))
    os.environ.setdefault("SSLVGS_CACHE", str(work / "cache"))
    # Its own temp folder: scratch folders of the commands stay out of reach of other jobs' cleanup.
    (work / "tmp").mkdir(parents=True, exist_ok=True)
    os.environ["TMPDIR"] = str(work / "tmp")
    setup(work / "shared")
    rows = []
    for name in chosen:
        target = targets(work / "shared")[name]
        reference_dir = work / name / "reference"
        duration = _reference(target, reference_dir, args.reuse_reference)
        reference = target.result(reference_dir)
        for old in (work / name).glob("t[0-9]*"):  # trials of an earlier invocation
            shutil.rmtree(old)
        counts = {"exact": 0, "refused": 0, "wrong": 0, "killed": 0}
        for index in range(args.n):
            kill_at = rng.uniform(0.2, args.kill_before or 0.9 * duration)  # may outlast a rerun
            outcome, killed, details = trial(target, work / name / f"t{index}", kill_at, reference)
            counts[outcome] += 1
            counts["killed"] += killed
            note = f" {details}" if details else ""
            print(f"{name} #{index}: kill at {kill_at:.1f}/{duration:.1f} s "
                  f"({'landed' if killed else 'after exit'}) -> {outcome}{note}", flush=True)  # fmt: skip
        rows.append((name, args.n, counts, duration))
    print(
        f"\n{'target':<10} {'tried':>5} {'killed':>6} {'exact':>5} {'refused':>7} {'wrong':>5}  T"
    )
    for name, tried, c, duration in rows:
        print(f"{name:<10} {tried:>5} {c['killed']:>6} {c['exact']:>5} {c['refused']:>7} "
              f"{c['wrong']:>5}  {duration:.0f} s")  # fmt: skip
    print("load average: " + " ".join(f"{v:.2f}" for v in os.getloadavg()))
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
