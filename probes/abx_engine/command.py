"""`sslvgs abx FEATURES ITEM ...`: a drop-in for the ZeroSpeech / libri-light / fastabx ABX scripts."""

from __future__ import annotations

import argparse
import json
import sys

from probes.vocabulary import CONTEXTS, DISTANCES, SPEAKERS
from training.progress import add_progress_flag

__all__ = ["register_abx", "run_abx"]


def register_abx(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``abx``; returns its parser so that other options (a model and layer) can be added."""
    parser = subparsers.add_parser(
        "abx",
        help="ABX error of features (a directory of .npy/.pt/.txt per file) on a ZeroSpeech item file",
        description="ABX phone discrimination error (ZeroSpeech 2021 semantics; the rules are in "
        "docs/abx.md). Prints the error in percent, or JSON with --json.",
    )
    parser.add_argument(
        "features",
        nargs="?",
        help="directory of per-file features named by the item file's #file column (.npy, .pt or "
        "ZeroSpeech .txt, frames x dim)",
    )
    parser.add_argument(
        "item",
        help="ZeroSpeech item file (#file onset offset #phone prev-phone next-phone speaker)",
    )
    parser.add_argument(
        "--frequency", type=float, default=50.0, help="feature frames per second (default 50)"
    )
    parser.add_argument("--speaker", choices=SPEAKERS, default="within")
    parser.add_argument("--context", choices=CONTEXTS, default="within")
    parser.add_argument("--distance", choices=DISTANCES, default="angular")
    parser.add_argument(
        "--pooling", choices=("none", "mean"), default="none", help="mean: one vector per item"
    )
    parser.add_argument(
        "--compat",
        choices=("librilight",),
        default=None,
        help="libri-light / zrc-abx2 slicing (last frame dropped, empty items skipped) and zero frames",
    )
    parser.add_argument(
        "--max-size-group", type=int, default=None, help="subsample: items per A, B, X set"
    )
    parser.add_argument(
        "--max-x-across", type=int, default=None, help="subsample: X speakers per A set"
    )
    parser.add_argument("--seed", type=int, default=0, help="subsampling seed")
    parser.add_argument(
        "--bootstrap", type=int, default=0, help="speaker resamples for a 95%% interval"
    )
    parser.add_argument(
        "--cells", default=None, help="also write the per-cell table to this CSV file"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_progress_flag(parser)
    parser.set_defaults(func=run_abx)
    return parser


def run_abx(args: argparse.Namespace) -> int:
    """Handler of ``sslvgs abx``: exit 0 and the score on stdout; bad input raises (main prints it)."""
    from probes.abx_engine.engine import score
    from probes.abx_engine.featurefiles import open_feature_dir
    from training.data.items import read_item_columns

    if args.features is None:
        raise ValueError("give FEATURES (a directory of per-file features) before ITEM")
    items = read_item_columns(args.item)  # numpy columns: no pandas in this process
    # headers only: scoring reads each file's used frames straight into their places
    features = open_feature_dir(args.features, list(dict.fromkeys(items["file"].tolist())))
    result = score(
        features,
        items,
        frequency=args.frequency,
        speaker=args.speaker,
        context=args.context,
        distance=args.distance,
        pooling=None if args.pooling == "none" else args.pooling,
        compat=args.compat,
        max_size_group=args.max_size_group,
        max_x_across=args.max_x_across,
        seed=args.seed,
        progress=not args.no_progress and not args.json and sys.stderr.isatty(),
    )
    return report(result, args)


def report(result, args: argparse.Namespace) -> int:
    """Print ``result`` as text or JSON (and write --cells); shared with the model-level variant."""
    summary = result.summary()
    if args.bootstrap:
        interval = result.bootstrap(n_boot=args.bootstrap, seed=args.seed)
        summary |= {"low": interval.low, "high": interval.high, "confidence": interval.confidence}
    if args.cells:
        from training.fileio import write_atomic

        write_atomic(args.cells, lambda tmp: result.cells.to_csv(tmp, index=False))
    if args.json:
        print(json.dumps(summary))
        return 0
    interval = (
        f" [{100 * summary['low']:.2f}, {100 * summary['high']:.2f}]" if args.bootstrap else ""
    )
    print(
        f"ABX error {100 * summary['score']:.2f}%{interval} ({result.condition.name}; {summary['n_cells']} cells, "
        f"{summary['n_triplets']} triplets, {summary['distance']} distance)"
    )
    return 0
