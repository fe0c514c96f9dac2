"""A process that extracts activations into a store, for the tests that need real processes.

    python tests/store_worker.py extract STORE WAVDIR [--pause-at STAGE --flag FILE --until FILE2]
        extract the tiny model's activations of WAVDIR's wavs into STORE; with --pause-at, create
        FILE the first time the store reaches STAGE and wait there until FILE2 exists.
        Prints {"forwards": batches computed}.
    python tests/store_worker.py faults WORKDIR WAVDIR REFERENCE
        for each stage of a store's life: a forked child extracts into WORKDIR/STAGE.zarr and
        SIGKILLs itself at that stage; then the same call runs here. Prints, per stage, the child's
        exit status, the batches the second call computed and whether its store equals REFERENCE.

One thread everywhere, so that every process computes bit-identical activations.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_probes_extract import tiny_wav2vec2  # noqa: E402

import probes.store  # noqa: E402
from probes import extract, open_store  # noqa: E402

STAGES = (
    ("created", 1),
    ("placed", 1),
    ("mid-batch", 5),  # in the second batch (4 layers a batch): its layer 0 written, not 1-3
    ("batch-written", 2),
    ("batch-recorded", 2),
    ("consolidated", 1),
    ("inventoried", 1),
    ("complete", 1),
)
OPTIONS = {"layers": "all", "batch_size": 2, "progress": False}


def _model_and_wavs(wavdir: str) -> tuple[torch.nn.Module, list[Path]]:
    torch.set_num_threads(1)
    return tiny_wav2vec2(0), sorted(Path(wavdir).glob("*.wav"))


def _counting(model: torch.nn.Module) -> list[int]:
    calls = [0]
    model.encoder.transformer.layers[0].register_forward_pre_hook(
        lambda *_: calls.__setitem__(0, calls[0] + 1)
    )
    return calls


def _at(stage: str, nth: int, action) -> None:
    """Make the store call `action` the `nth` time it reaches `stage`."""
    seen = [0]
    previous = probes.store._reached

    def reached(name: str) -> None:
        previous(name)
        if name == stage:
            seen[0] += 1
            if seen[0] == nth:
                action()

    probes.store._reached = reached


def _pause(flag: Path, until: Path) -> None:
    flag.touch()
    deadline = time.monotonic() + 120
    while not until.exists() and time.monotonic() < deadline:
        time.sleep(0.02)


def run_extract(args: argparse.Namespace) -> None:
    model, wavs = _model_and_wavs(args.wavdir)
    calls = _counting(model)
    if args.pause_at:
        _at(args.pause_at, 1, lambda: _pause(Path(args.flag), Path(args.until)))
    extract(model, wavs, store=args.store, **OPTIONS)
    print(json.dumps({"forwards": calls[0]}))


def same_store(path: Path, reference: Path) -> bool:
    got, want = open_store(path).load(), open_store(reference).load()
    names = ("activations", "utt", "time", "n_frames", "offset", "utterance")
    return all(got[name].equals(want[name]) for name in names)


def run_faults(args: argparse.Namespace) -> None:
    model, wavs = _model_and_wavs(args.wavdir)
    calls = _counting(model)
    results = {}
    for stage, nth in STAGES:
        store = Path(args.workdir) / f"{stage}.zarr"
        child = os.fork()
        if child == 0:  # the child dies at the stage, as abruptly as a kill -9 from outside
            _at(stage, nth, lambda: os.kill(os.getpid(), signal.SIGKILL))
            extract(model, wavs, store=store, **OPTIONS)
            os._exit(0)
        _, status = os.waitpid(child, 0)
        calls[0] = 0
        extract(model, wavs, store=store, **OPTIONS)
        results[stage] = {
            "killed": os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL,
            "forwards": calls[0],
            "equal": same_store(store, Path(args.reference)),
        }
    print(json.dumps(results))


def main() -> None:
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("extract")
    one.add_argument("store")
    one.add_argument("wavdir")
    one.add_argument("--pause-at")
    one.add_argument("--flag")
    one.add_argument("--until")
    one.set_defaults(func=run_extract)
    faults = commands.add_parser("faults")
    faults.add_argument("workdir")
    faults.add_argument("wavdir")
    faults.add_argument("reference")
    faults.set_defaults(func=run_faults)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
