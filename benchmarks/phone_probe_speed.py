"""The phone probe's classifier against scikit-learn's, on the same frames: speed and accuracy.

Two ways to fit one multinomial logistic regression per layer (C = 1, standardised frames) and
predict held-out speakers' frames, timed one after the other, interleaved (A B A B ...) so that the
machine's load hits both alike:

  A. the peer, what the probe did before: scikit-learn's ``StandardScaler`` +
     ``LogisticRegression(C, max_iter=300)`` (lbfgs), one layer after another;
  B. ``probes.phones.fit_predict``: every layer at once (preconditioned L-BFGS in torch).

Two sets of frames, each split as ``phone_probe`` splits them (speaker-disjoint, seeded, train
frames subsampled to ``--max-train-frames``):

  - real: every layer of a trained run's last checkpoint on its corpus's train split, exactly the
    arrays ``phone_probe`` fits (``probes.phones.phone_frames``; extraction is not timed);
  - synthetic, the paper preset's shape (default 13 layers x 20,000 train frames x 768 dims,
    40 phones): phones planted in a 48-dim subspace whose strength peaks in the middle layers,
    per-speaker offsets, anisotropic noise (covariance spectrum ~ 1/k), per-dim scales and offsets.

Prints per layer both held-out accuracies, their difference and scikit-learn's iterations; wall
and CPU seconds of each way (best of the repeats), their ratio, the thread count and the load
average (``os.getloadavg()``) before and after each timed call.

    python benchmarks/phone_probe_speed.py [--run RUN] [--synthetic 13x20000x768] [--threads 2]
        [--repeats 1] [--synthetic-layers 0,6,12] [--json OUT]

Without ``--run`` only the synthetic set is measured; ``--synthetic none`` skips it. A synthetic
layer subset keeps the whole 13-layer profile (layer i of 13) but fits only those layers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SIGNAL = [float(v) for v in os.environ.get("SIGNAL", "0.025,0.012,0.02,0.03").split(",")]


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, help="a trained run (its last checkpoint is probed)")
    parser.add_argument("--synthetic", default="13x20000x768", help="LAYERSxFRAMESxDIM or none")
    parser.add_argument("--synthetic-layers", help="fit only these layers (comma list)")
    parser.add_argument("--phones", type=int, default=40)
    parser.add_argument("--max-train-frames", type=int, default=20000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--json", type=Path)
    return parser.parse_args()


def main() -> None:
    args = parse()
    # Before numpy, scipy and torch load their thread pools.
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(args.threads)
    sys.path.insert(0, str(REPO))
    import torch

    torch.set_num_threads(args.threads)
    results = {"threads": args.threads, "sets": {}}
    if args.run is not None:
        from probes.phones import phone_frames
        from training.run.directory import list_checkpoints

        checkpoint = list(list_checkpoints(args.run).values())[-1]
        frames = phone_frames(
            checkpoint, "all", max_train_frames=args.max_train_frames, progress=False
        )
        name = f"real ({checkpoint.name}, {frames.train_x.shape[2]} dims)"
        results["sets"][name] = compare(name, frames, args)
    if args.synthetic != "none":
        layers, n_frames, dim = (int(v) for v in args.synthetic.split("x"))
        fitted = range(layers)
        if args.synthetic_layers:
            fitted = [int(v) for v in args.synthetic_layers.split(",")]
        frames = synthetic_frames(
            layers=layers, fitted=fitted, train_frames=n_frames, dim=dim, phones=args.phones
        )
        name = f"synthetic ({len(fitted)} of {layers} layers x {n_frames} x {dim}, {args.phones} phones)"
        results["sets"][name] = compare(name, frames, args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


def compare(name: str, frames, args) -> dict:
    """Time A (scikit-learn per layer) and B (fit_predict) interleaved; print the table."""
    import numpy as np

    from probes.phones import fit_predict

    def accuracy(predicted):
        return [float(np.mean(frames.phones[p] == frames.test_labels)) for p in predicted]

    timings = {"scikit-learn": [], "fit_predict": []}
    for _ in range(args.repeats):
        (sk_predicted, sk_iterations), sk_time = timed(lambda: scikit_learn(frames, args.threads))
        timings["scikit-learn"].append(sk_time)
        ours, our_time = timed(lambda: fit_predict(frames.train_x, frames.train_y, frames.test_x))
        timings["fit_predict"].append(our_time)
    sk_accuracy, our_accuracy = accuracy(sk_predicted), accuracy(ours)
    best = {way: min(runs, key=lambda run: run["wall_s"]) for way, runs in timings.items()}
    layers, n, dim = frames.train_x.shape
    print(f"\n{name}: {layers} layers, {n} train / {frames.test_x.shape[1]} test frames, {dim} dims,"
          f" {len(frames.phones)} phones, {args.threads} threads")  # fmt: skip
    print("layer  scikit-learn  fit_predict  difference (points)  scikit-learn iterations")
    for layer, a, b, it in zip(
        frames.layers, sk_accuracy, our_accuracy, sk_iterations, strict=True
    ):
        print(f"{int(layer):5d}  {a:12.4f}  {b:11.4f}  {100 * (b - a):+19.2f}  {it:23d}")
    for way, runs in timings.items():
        for run in runs:
            print(f"{way:>12}: wall {run['wall_s']:7.2f} s  CPU {run['cpu_s']:7.2f} s  "
                  f"load before {run['load_before']}  after {run['load_after']}")  # fmt: skip
    ratio_wall = best["scikit-learn"]["wall_s"] / best["fit_predict"]["wall_s"]
    ratio_cpu = best["scikit-learn"]["cpu_s"] / best["fit_predict"]["cpu_s"]
    worst = max(abs(b - a) for a, b in zip(sk_accuracy, our_accuracy, strict=True))
    print(f"ratio (best of {args.repeats}): wall {ratio_wall:.2f}x  CPU {ratio_cpu:.2f}x; "
          f"largest accuracy difference {100 * worst:.2f} points")  # fmt: skip
    return {"layers": [int(v) for v in frames.layers], "scikit_learn_accuracy": sk_accuracy,
            "fit_predict_accuracy": our_accuracy, "scikit_learn_iterations": sk_iterations,
            "timings": timings, "ratio_wall": ratio_wall, "ratio_cpu": ratio_cpu,
            "largest_difference": worst, "shape": [layers, n, dim]}  # fmt: skip


def timed(call):
    """(call's result, {wall_s, cpu_s, load_before, load_after}); CPU = this process's threads."""
    load_before = [round(v, 2) for v in os.getloadavg()]
    wall, cpu = time.perf_counter(), time.process_time()
    result = call()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    load_after = [round(v, 2) for v in os.getloadavg()]
    return result, {"wall_s": wall, "cpu_s": cpu, "load_before": load_before,
                    "load_after": load_after}  # fmt: skip


def scikit_learn(frames, threads: int):
    """The peer: StandardScaler + LogisticRegression (lbfgs, max_iter 300) per layer, in turn."""
    import warnings

    import numpy as np
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    predicted, iterations = [], []
    with threadpool_limits(threads), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for train_x, test_x in zip(frames.train_x, frames.test_x, strict=True):
            classifier = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=300))
            classifier.fit(train_x, frames.train_y)
            predicted.append(classifier.predict(test_x))
            iterations.append(int(classifier[-1].n_iter_[0]))
    return np.stack(predicted), iterations


def synthetic_frames(*, layers, fitted, train_frames, dim, phones, speakers=40, rank=48, seed=0):
    """PhoneFrames of planted phones, split by the probe's protocol (module docstring)."""
    import numpy as np

    from probes.phones import PhoneFrames, split_frames

    rng = np.random.default_rng(seed)
    # Enough frames that the held-out speakers' share (0.3) leaves more than `train_frames`.
    total = int(train_frames / 0.6)
    share = 1.0 / np.arange(1, phones + 1) ** 0.7  # phones are not equally frequent
    lengths = rng.integers(2, 13, total // 2)  # phone segments of 2..12 frames
    segment_phone = rng.choice(phones, len(lengths), p=share / share.sum())
    segment = np.repeat(np.arange(len(lengths)), lengths)[:total]
    labels = segment_phone[segment]
    speaker = rng.integers(0, speakers, len(lengths))[segment]
    train, test, held_out = split_frames(
        labels.astype(str), speaker.astype(str), max_train_frames=train_frames
    )
    centres = rng.standard_normal((phones, rank))
    basis = np.linalg.qr(rng.standard_normal((dim, rank)))[0].T.astype(np.float32)  # orthonormal
    rotation = np.linalg.qr(rng.standard_normal((dim, dim)))[0].astype(np.float32)
    spectrum = np.sqrt(1.0 / np.arange(1, dim + 1), dtype=np.float32)
    rows = np.concatenate([train, test])
    out = np.empty((len(fitted), len(rows), dim), np.float32)
    for i, layer in enumerate(fitted):
        r = np.random.default_rng([seed, layer])
        depth = layer / max(layers - 1, 1)
        signal = SIGNAL[0] + SIGNAL[1] * np.exp(-((depth - 0.6) ** 2) / 0.08)
        coarticulation = r.standard_normal((len(lengths), rank), np.float32) * SIGNAL[2]
        x = (signal * centres[labels[rows]] + coarticulation[segment[rows]]) @ basis
        x += (r.standard_normal((len(rows), dim), np.float32) * spectrum) @ rotation
        x += (r.standard_normal((speakers, dim)) * SIGNAL[3] * (1.2 - depth))[speaker[rows]]
        out[i] = x * np.exp(r.standard_normal(dim)) + r.standard_normal(dim)
    _, counts = np.unique(labels[test], return_counts=True)
    return PhoneFrames(
        layers=np.asarray(fitted), train_x=np.ascontiguousarray(out[:, : len(train)]),
        train_y=labels[train],
        test_x=np.ascontiguousarray(out[:, len(train) :]), test_labels=labels[test], phones=np.arange(phones),
        attrs={"chance": float(counts.max() / counts.sum()), "test_speakers": held_out},
    )  # fmt: skip


if __name__ == "__main__":
    main()
