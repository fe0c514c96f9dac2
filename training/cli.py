"""`sslvgs corpus` and `sslvgs train`."""

from __future__ import annotations

import argparse

from training.progress import add_progress_flag

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the training subcommands (corpus, train)."""
    _register_corpus(subparsers)
    _register_train(subparsers)


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
    add_progress_flag(parser)
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


def _register_train(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train the VGS+ model under a schedule of the two objectives (resumable)",
        description="Train on CORPUS into the run directory RUN (config.json, "
        "checkpoints/epoch_NNNN.pt, metrics.jsonl). A schedule is a comma list of stages, each "
        "w2v2 (alpha 0), vgs (alpha 1), vgs+ (alpha 0.5) or alpha=X, e.g. --schedule vgs,w2v2 "
        "--stage-epochs 20,50; the paper's variants are named: w2v2, vgs, vgs+, w2v2-then-vgs+, "
        "vgs-then-vgs+, w2v2-then-vgs, vgs-then-w2v2, vgs+-then-w2v2, vgs+-then-vgs. "
        "Several GPUs: torchrun --nproc-per-node N -m analysis.cli train ...",
    )
    parser.add_argument("corpus", help="corpus folder (SpokenCOCO layout with region features)")
    parser.add_argument("run", help="run directory (created; with --resume, continued)")
    parser.add_argument(
        "--preset", default="tiny", choices=("tiny", "small", "paper"), help="model size"
    )
    parser.add_argument("--schedule", default=None, help="stages (default: the preset's, vgs+)")
    parser.add_argument("--stage-epochs", default=None, help="epochs per stage, e.g. 20,50")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument("--batch-size", type=int, default=None, help="global batch size")
    parser.add_argument("--init-from", default=None, help="start from this checkpoint's weights")
    parser.add_argument("--epochs-per-eval", type=int, default=None, help="validate every N epochs")
    parser.add_argument("--eval-split", default=None, help="split for validation recall (val)")
    parser.add_argument("--lr", type=float, default=None, help="peak learning rate")
    parser.add_argument("--seed", type=int, default=None, help="seed of init, data order, masks")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument(
        "--precision", default=None, choices=("auto", "fp32", "bf16"), help="auto: bf16 on CUDA"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="any ModelConfig/TrainConfig field (VALUE parsed as JSON, else text); repeatable",
    )
    parser.add_argument(
        "--stop-after-epoch", type=int, default=None, help="return after this epoch (resumable)"
    )
    add_progress_flag(parser)
    parser.set_defaults(func=_train)


def _train(args: argparse.Namespace) -> int:
    import json

    from training.trainer import train

    overrides = {}
    for item in args.set:
        field, sep, value = item.partition("=")
        if not sep or not field:
            raise ValueError(f"--set {item!r}: expected FIELD=VALUE")
        try:
            overrides[field] = json.loads(value)
        except json.JSONDecodeError:
            overrides[field] = value
    named = {
        "epochs_per_eval": args.epochs_per_eval,
        "eval_split": args.eval_split,
        "lr": args.lr,
        "seed": args.seed,
        "precision": args.precision,
        "compile": args.compile or None,
    }
    overrides.update({k: v for k, v in named.items() if v is not None})
    run = train(
        args.corpus,
        args.run,
        preset=args.preset,
        schedule=args.schedule,
        stage_epochs=args.stage_epochs,
        resume=args.resume,
        device=args.device,
        batch_size=args.batch_size,
        init_from=args.init_from,
        progress=not args.no_progress,
        stop_after_epoch=args.stop_after_epoch,
        **overrides,
    )
    lines = (run / "metrics.jsonl").read_text().splitlines()
    if lines:
        last = json.loads(lines[-1])
        shown = {k: round(v, 4) if isinstance(v, float) else v for k, v in last.items()}
        print(f"run {run}: last epoch {json.dumps(shown)}")
    return 0
