"""`sslvgs extract`, `sslvgs abx`, `sslvgs recall` and `sslvgs cache`."""

from __future__ import annotations

import argparse

from training.data.options import add_allow_outside_option, add_regions_option, add_resample_option
from training.progress import add_progress_flag

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the probe subcommands (extract, abx, recall, cache)."""
    _register_extract(subparsers)
    _register_abx(subparsers)
    _register_recall(subparsers)
    _register_cache(subparsers)


def _register_abx(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    # The ABX engine's own command, with a model-level variant: --model scores a model's layer.
    from probes.abx_engine.command import register_abx

    parser = register_abx(subparsers)
    parser.add_argument(
        "--model", help="checkpoint file or run directory: score its layer --layer (not FEATURES)"
    )
    parser.add_argument("--layer", type=int, help="with --model: 0 = feature encoder, 1..N")
    parser.add_argument(
        "--wavs",
        help="with --model: folder under which each #file is found as .wav or .flac, at any "
        "depth (LibriSpeech's layout included); default: wavs/ beside the item file",
    )
    parser.add_argument("--device", default="cpu", help="with --model: where the model runs")
    parser.add_argument(
        "--protocol",
        choices=("default", "paper"),
        default="default",
        help="paper: the paper's evaluation (libri-light slicing, i.e. --compat librilight; "
        "layers 1..N as the paper prints them; waveforms z-normalised per utterance)",
    )
    add_resample_option(parser)
    add_allow_outside_option(parser)
    parser.set_defaults(func=_abx)
    return parser


def _abx(args: argparse.Namespace) -> int:
    from probes.abx_engine.command import run_abx
    from probes.protocol import abx_options

    args.compat = abx_options(args.protocol, {"compat": args.compat} if args.compat else {}).get(
        "compat"
    )
    if args.model is None:
        for given, option in ((args.wavs is not None, "--wavs"), (args.resample, "--resample"),
                              (args.allow_outside_root, "--allow-outside-root")):  # fmt: skip
            if given:
                raise ValueError(
                    f"{option} goes with --model (FEATURES are read from their folder)"
                )
    return abx_of_model(args) if args.model is not None else run_abx(args)


def abx_of_model(args: argparse.Namespace) -> int:
    """`sslvgs abx --model CHECKPOINT --layer L ITEM`: extract (or read the cache) and score."""
    from probes.abx_engine.command import report
    from probes.abx_probe import abx

    if args.features is not None:
        raise ValueError("give either FEATURES or --model CHECKPOINT --layer L, not both")
    if args.layer is None:
        raise ValueError("--model needs --layer L (0 = feature encoder, 1..N transformer layers)")
    result = abx(
        args.model, args.layer, args.item, wavs=args.wavs, speaker=args.speaker, context=args.context,
        distance=args.distance, pooling=None if args.pooling == "none" else args.pooling,
        compat=args.compat, max_size_group=args.max_size_group, max_x_across=args.max_x_across,
        seed=args.seed, device=args.device, progress=not args.no_progress and not args.json,
        resample=args.resample, allow_outside=args.allow_outside_root, protocol=args.protocol,
    )  # fmt: skip
    return report(result, args)


# --- extract and recall (probes on trained models) ------------------------------------------------


def parse_layers(text: str) -> str | list[int]:
    """`all`, `3`, `1,4,8` or `2-5` -> "all" or a list of layers."""
    if text == "all":
        return "all"
    layers: list[int] = []
    try:
        for part in text.split(","):
            low, _, high = part.partition("-")
            layers.extend(range(int(low), int(high) + 1) if high else [int(low)])
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"layers must be all, 3, 1,4,8 or 2-5, not {text!r}"
        ) from None
    return layers


def _register_extract(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "extract",
        help="write a model's layer activations on a corpus split, ABX set or wavs to a zarr store",
        description="Extract layer activations into a zarr store (ragged layout; resumable: run "
        "the same command again after an interruption).",
    )
    parser.add_argument("model", help="checkpoint file or run directory")
    parser.add_argument(
        "source",
        nargs="+",
        help="corpus dir (with --split), ABX set dir or item file, wav dir or wavs",
    )
    parser.add_argument("--split", help="corpus split (train, val, test) when SOURCE is a corpus")
    parser.add_argument("--wavs", help="wav directory of an item file (default: wavs/ beside it)")
    parser.add_argument("--layers", type=parse_layers, default="all", help="all, 3, 1,4,8 or 2-5")
    parser.add_argument("--out", required=True, help="store path (a directory, e.g. acts.zarr)")
    parser.add_argument("--dtype", choices=("float32", "float16"), default="float32")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    add_resample_option(parser)
    add_allow_outside_option(parser)
    parser.add_argument(
        "--overwrite", action="store_true", help="replace a store of other activations"
    )
    add_progress_flag(parser)
    parser.set_defaults(func=_extract)


def _extract(args: argparse.Namespace) -> int:
    from probes.activations import extract
    from probes.sources import as_source

    source = args.source[0] if len(args.source) == 1 else args.source
    if args.allow_outside_root:
        source = as_source(source, split=args.split, wavs=args.wavs, allow_outside=True)
    dataset = extract(
        args.model, source, args.layers, args.out, split=args.split, wavs=args.wavs,
        dtype=args.dtype, batch_size=args.batch_size, device=args.device, resample=args.resample,
        overwrite=args.overwrite, progress=not args.no_progress,
    )  # fmt: skip
    sizes = dataset.sizes
    print(
        f"{args.out}: {sizes['utterance']} utterances, {sizes['frame']} frames, layers "
        f"{dataset.layer.values.tolist()}, {sizes['feature']} features ({dataset.activations.dtype})"
    )
    return 0


def _register_recall(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "recall",
        help="speech<->image recall@k of a checkpoint on a corpus split",
        description="Recall@k both ways (an image query hits if any of its captions is in the top k).",
    )
    parser.add_argument("model", help="checkpoint file or run directory")
    parser.add_argument("corpus", nargs="?", help="corpus root (default: the run's)")
    parser.add_argument(
        "--split", default="test", help="train, val, test (docs/data.md: which file serves it)"
    )
    add_regions_option(parser)
    add_resample_option(parser)
    add_allow_outside_option(parser)
    parser.add_argument("-k", type=int, nargs="+", default=[1, 5, 10])
    parser.add_argument("--bootstrap", type=int, default=0, help="resamples for a 95%% interval")
    parser.add_argument(
        "--folds",
        type=int,
        default=1,
        help="rank within this many consecutive groups of images and average (COCO's 1k "
        "protocol: --folds 5 on its 5k test images); default 1, the whole split",
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--protocol",
        choices=("default", "paper"),
        default="default",
        help="paper: the paper's evaluation (recall is the same in both: one-to-many image "
        "queries, z-normalised waveforms; recorded in the output)",
    )
    add_progress_flag(parser)
    parser.set_defaults(func=_recall)


def _recall(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from probes.retrieval import recall

    result = recall(
        args.model, args.split, args.k, args.corpus, batch_size=args.batch_size, device=args.device,
        bootstrap=args.bootstrap, progress=not args.no_progress, resample=args.resample,
        regions=None if args.regions is None else [Path(p) for p in args.regions],
        allow_outside=args.allow_outside_root, protocol=args.protocol, folds=args.folds,
    )  # fmt: skip
    rows = [
        {"direction": str(d), "k": int(k), "recall": float(result.sel(direction=d, k=k)),
         **({"low": float(result.low.sel(direction=d, k=k)),
             "high": float(result.high.sel(direction=d, k=k))} if args.bootstrap else {})}
        for d in result.direction.values
        for k in result.k.values
    ]  # fmt: skip
    if args.json:
        print(
            json.dumps({**{k: str(v) for k, v in result.attrs.items()}, "recall": rows}, indent=1)
        )
        return 0
    for row in rows:
        interval = f"  [{100 * row['low']:.1f}, {100 * row['high']:.1f}]" if args.bootstrap else ""
        print(f"{row['direction']:<16} R@{row['k']:<3} {100 * row['recall']:6.2f}%{interval}")
    return 0


# --- cache: what is stored, and clearing it ---------------------------------------------------


def _register_cache(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "cache",
        help="list or clear cached activations, grids and recall (of runs, or $SSLVGS_CACHE)",
        description="Caches: RUN/probes/activations (activation stores), RUN/analysis (grid cells, "
        "test recall) and $SSLVGS_CACHE/activations (models without a run). Without RUN: the "
        "user cache.",
    )
    kinds = ("activations", "grids", "recall", "all")
    parser.add_argument("--kind", choices=kinds, default="all")
    # list and clear are subcommands of their own, so options may come before or after the runs
    # (`cache clear --kind grids RUN` as well as `cache clear RUN --kind grids`): one parser with
    # two positionals, the second nargs="*", takes no positional after an option.
    actions = parser.add_subparsers(dest="action", required=True, metavar="{list,clear}")
    for action, text in (
        ("list", "list the cached activations, grids and recall of RUNs (or the user cache)"),
        ("clear", "remove the cached activations, grids and recall of RUNs (or the user cache)"),
    ):
        sub = actions.add_parser(action, help=text, description=text)
        sub.add_argument("runs", nargs="*", metavar="RUN", help="run directories")
        sub.add_argument("--kind", choices=kinds, default=argparse.SUPPRESS)
    parser.set_defaults(func=_cache)


def _cache(args: argparse.Namespace) -> int:
    from probes.caches import clear_caches, list_caches

    table = (clear_caches if args.action == "clear" else list_caches)(*args.runs, kind=args.kind)
    if table.empty:
        print("nothing cached" if args.action == "list" else "nothing removed")
        return 0
    shown = table.assign(
        size=[f"{size / 2**20:.1f} MiB" for size in table.size_bytes],
        layers=[_layer_span(layers) for layers in table.layers],
    ).drop(columns="size_bytes")
    print(shown.to_string(index=False))
    verb = "removed" if args.action == "clear" else "in all"
    print(f"{len(table)} entries, {table.size_bytes.sum() / 2**20:.1f} MiB {verb}")
    return 0


def _layer_span(layers: list[int] | None) -> str:
    if not layers:
        return "-"
    contiguous = list(layers) == list(range(layers[0], layers[-1] + 1))
    return (
        f"{layers[0]}-{layers[-1]}"
        if contiguous and len(layers) > 2
        else ",".join(map(str, layers))
    )
