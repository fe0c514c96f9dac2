"""`sslvgs corpus` and `sslvgs train`."""

from __future__ import annotations

import argparse

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the training subcommands (corpus, train)."""
    _register_corpus(subparsers)


def _register_corpus(subparsers: argparse._SubParsersAction) -> None:
    from training.corpus import DEFAULT_IMAGES, DEFAULT_REGION_DIM

    parser = subparsers.add_parser(
        "corpus",
        help="build the embedded spoken-scenes corpus (resumes an interrupted build)",
        description="Build the spoken-scenes corpus in OUT: scenes, region features, spoken "
        "captions with phone alignments, ABX sets. Same arguments, same bytes; rerunning an "
        "interrupted build finishes it.",
    )
    parser.add_argument("out", help="corpus folder (created; must be empty or a partial build)")
    parser.add_argument("--images", type=int, default=DEFAULT_IMAGES, help="number of images")
    parser.add_argument(
        "--captions-per-image", type=int, default=5, help="spoken captions per image"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument(
        "--region-dim",
        type=int,
        default=DEFAULT_REGION_DIM,
        help="region feature dimension (2048: LXMERT)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=_corpus)


def _corpus(args: argparse.Namespace) -> int:
    import json

    from training.corpus import build_corpus

    root = build_corpus(
        args.out,
        images=args.images,
        captions_per_image=args.captions_per_image,
        seed=args.seed,
        region_dim=args.region_dim,
        progress=not args.no_progress,
    )
    counts = json.loads((root / "manifest.json").read_text())["counts"]
    captions = ", ".join(f"{split} {n}" for split, n in counts["captions"].items())
    print(f"corpus in {root.resolve()} (captions: {captions})")
    return 0
