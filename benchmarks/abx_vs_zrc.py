"""Compare sslvgs's compat="librilight" scores with zrc-abx2 0.9.8's, in one run (agreement within 1e-6).

Two sets: (a) a small synthetic set shaped like benchmarks/abx_vs_fastabx.py's (fewer files and a
smaller dimension, because zrc-abx2 scores cell by cell in Python: its across / any takes minutes even
here), with some all-zero frames for libri-light's zero-frame rule; (b) with --corpus ROOT, the
embedded corpus's ABX set ROOT/abx/read (real item times, not on the frame grid) with log-spectrum
features at 50 Hz computed from its wavs, normalised (cmvn) and raw (log; see corpus_features). Every condition of both, no subsampling (zrc-abx2 gets
max_size_group and max_x_across larger than any group), angular ("cosine" in zrc-abx2) distance, DTW.
Each (tool, condition) runs in its own subprocess; times are end to end after the imports.

zrc-abx2 needs torch and a build of its Cython DTW, so it runs from its own virtual environment:
    python3.11 -m venv /tmp/zrc-venv
    /tmp/zrc-venv/bin/pip install torch zerospeech-libriabx2==0.9.8
and is found with --zrc-python or $ZRC_PYTHON (default /tmp/zrc-venv/bin/python); without it the
table has sslvgs only, with a note.

    .venv/bin/python benchmarks/abx_vs_zrc.py [--corpus ROOT [--corpus-features cmvn,log]] [--sets none]
        [--conditions within/within,...] [--json F]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from abx_vs_fastabx import CONDITIONS, build_set, run  # noqa: E402

FEATURE_SIZE = 0.02  # zrc-abx2's --feature_size (seconds per frame); its frequency is 1 / this

ZRC_RUN = """
import contextlib, json, sys, time
from zrc_abx2.eval_ABX import EvalABX, EvalArgs
big = 10**9  # larger than any group: no subsampling
args = EvalArgs(path_data=sys.argv[2], path_item_file=sys.argv[1], file_extension=".npy",
                feature_size=float(sys.argv[5]), speaker_mode=sys.argv[3], context_mode=sys.argv[4],
                distance_mode="cosine", max_size_group=big, max_x_across=big, pooling="none")
t0, c0 = time.perf_counter(), time.process_time()
with contextlib.redirect_stdout(sys.stderr):  # zrc-abx2 prints its progress
    scores = EvalABX().eval_abx(args)
print(json.dumps({"score": scores[0]["score"], "seconds": time.perf_counter() - t0,
                  "cpu_s": time.process_time() - c0}))
"""

SSLVGS_RUN = """
import json, sys, time, warnings
from probes.abx_engine import load_feature_dir, score
from training.data import read_items
warnings.simplefilter("ignore")  # the dropped-items warning: its count is in the result's meta
t0, c0 = time.perf_counter(), time.process_time()
items = read_items(sys.argv[1])
features = load_feature_dir(sys.argv[2], items["file"].unique().tolist())
result = score(features, items, speaker=sys.argv[3], context=sys.argv[4], compat="librilight",
               frequency=1 / float(sys.argv[5]))
print(json.dumps({"score": float(result), "seconds": time.perf_counter() - t0,
                  "cpu_s": time.process_time() - c0, "dropped": result.meta["dropped_items"],
                  "n_cells": len(result.cells)}))
"""


def add_zero_frames(features: Path, rate: float = 0.01, seed: int = 1) -> None:
    """Zero a fraction of the frames of every file (libri-light's zero-frame rule gets exercised)."""
    rng = np.random.default_rng(seed)
    for path in sorted(features.glob("*.npy")):
        frames = np.load(path)
        frames[rng.random(len(frames)) < rate] = 0
        np.save(path, frames)


def corpus_features(
    root: Path, out: Path, cmvn: bool, hop: int = 320, window: int = 400, bands: int = 40
) -> Path:
    """Log-spectrum features [frames, bands] at 16000 / hop Hz of ROOT/abx/read/wavs; returns the item file.

    Raw log spectra share a large common offset, so their frames are nearly collinear (cosines of
    0.93 to 1): angular distances then hang on the float32 rounding of dot products near 1, where
    arccos is ill-conditioned, and the two tools' roundings differ. ``cmvn`` (per-utterance mean and
    variance normalisation, as speech features usually get) removes the offset.
    """
    import soundfile

    out.mkdir(parents=True, exist_ok=True)
    abx = root / "abx" / "read"
    taper = np.hanning(window)
    for wav in sorted((abx / "wavs").glob("*.wav")):
        audio, rate = soundfile.read(wav, dtype="float64")
        assert rate == 16000, f"{wav}: {rate} Hz"
        audio = np.pad(audio, (0, max(0, window - len(audio))))
        starts = np.arange(0, len(audio) - window + 1, hop)
        frames = audio[starts[:, None] + np.arange(window)] * taper
        power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
        edges = np.linspace(0, power.shape[1], bands + 1).astype(int)
        banded = np.add.reduceat(power, edges[:-1], axis=1)
        features = np.log(banded + 1e-8)
        if cmvn:
            features = (features - features.mean(0)) / (features.std(0) + 1e-8)
        np.save(out / f"{wav.stem}.npy", features.astype(np.float32))
    return abx / "items.item"


def compare(name: str, item: Path, features: Path, conditions: list[str], zrc: str | None) -> list:
    rows, repo = [], Path(__file__).resolve().parents[1]
    for condition in conditions:
        speaker, context = condition.split("/")
        args = [str(item), str(features), speaker, context]
        ours = run(sys.executable, SSLVGS_RUN, args + [repr(FEATURE_SIZE)], 1, repo)
        theirs = run(zrc, ZRC_RUN, args + [repr(FEATURE_SIZE)], 1) if zrc else None
        rows.append({"set": name, "condition": condition, "sslvgs": ours, "zrc": theirs})
        line = (
            f"{name:10s} {condition:14s} sslvgs {ours['score']:.9f} ({ours['seconds']:6.2f} s, "
            f"{ours['n_cells']} cells, {ours['dropped']} items dropped)"
        )
        if theirs:
            diff = abs(ours["score"] - theirs["score"])
            line += (
                f" | zrc-abx2 {theirs['score']:.9f} ({theirs['seconds']:7.2f} s) | |diff| {diff:.1e}"
                f" {'ok' if diff <= 1e-6 else 'DIFFERENT'}"
            )
        print(line, flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=None, help="where to build the sets")
    parser.add_argument("--corpus", type=Path, default=None, help="a corpus root (abx/read)")
    parser.add_argument(
        "--corpus-features", default="cmvn,log", help="cmvn (normalised) and/or log (raw) spectra"
    )
    parser.add_argument("--sets", default="synthetic", help="synthetic, or none (corpus only)")
    parser.add_argument("--conditions", default=",".join(CONDITIONS))
    parser.add_argument(
        "--zrc-python", default=os.environ.get("ZRC_PYTHON", "/tmp/zrc-venv/bin/python")
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the table as JSON here")
    args = parser.parse_args(argv)
    zrc = args.zrc_python if Path(args.zrc_python).exists() else None
    if zrc is None:
        print(f"note: zrc-abx2 not found at {args.zrc_python}: sslvgs only (see --zrc-python)")
    conditions = args.conditions.split(",")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        if args.sets == "synthetic":
            synthetic = out / "synthetic"
            item = build_set(synthetic, n_files=40, items_per_file=50, n_speakers=4, dim=32)
            add_zero_frames(synthetic / "features")
            rows += compare("synthetic", item, synthetic / "features", conditions, zrc)
        for kind in args.corpus_features.split(",") if args.corpus else []:
            features = out / f"corpus-{kind}"
            item = corpus_features(args.corpus, features, cmvn=kind == "cmvn")
            rows += compare(f"corpus-{kind}", item, features, conditions, zrc)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
