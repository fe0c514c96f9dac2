"""`sslvgs corpus` and `sslvgs train`."""

from __future__ import annotations

import argparse

from training.data.options import add_allow_outside_option, add_regions_option, add_resample_option
from training.progress import add_progress_flag

__all__ = ["register"]


class _CorpusDefault:
    """A default of the corpus builder, read from training.corpus only when it is needed (the help
    text, or a build without the option): the parser must not import the builder (torch, scipy)."""

    def __init__(self, name: str):
        self.name = name

    def value(self):
        from training import corpus

        return getattr(corpus, self.name)

    def __str__(self) -> str:
        return str(self.value())


def _given(value):
    return value.value() if isinstance(value, _CorpusDefault) else value


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the training subcommands (corpus, train)."""
    _register_corpus(subparsers)
    _register_train(subparsers)


def _register_corpus(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "corpus",
        help="build the embedded spoken-scenes corpus (resumes an interrupted build)",
        description="Build the spoken-scenes corpus in OUT: scenes, region features, spoken "
        "captions with phone alignments, ABX sets. Same arguments, same bytes; rerunning an "
        "interrupted build finishes it.",
    )
    parser.add_argument("out", help="corpus folder (created; must be empty or a partial build)")
    parser.add_argument(
        "--images",
        type=int,
        default=_CorpusDefault("DEFAULT_IMAGES"),
        help="number of images (default %(default)s)",
    )
    parser.add_argument(
        "--captions-per-image", type=int, default=5, help="spoken captions per image"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument(
        "--region-dim",
        type=int,
        default=_CorpusDefault("DEFAULT_REGION_DIM"),
        help="region feature dimension (default %(default)s; 2048: LXMERT)",
    )
    parser.add_argument(
        "--variation",
        default="natural",
        choices=("natural", "clean"),
        help="natural (default): each utterance its own realisation (voice jitter, speed, room, "
        "noise; docs/corpus.md); clean: plain espeak-ng, the corpus of earlier versions",
    )
    parser.add_argument(
        "--clean", dest="variation", action="store_const", const="clean", help="--variation clean"
    )
    parser.add_argument(
        "--snr",
        default=None,
        metavar="LOW,HIGH",
        help="range of the natural corpus's signal-to-noise ratios in dB (default 20,40)",
    )
    parser.add_argument(
        "--read-speakers",
        type=int,
        default=_CorpusDefault("READ_SPEAKERS"),
        metavar="N",
        help="speakers of the `read` ABX set (default %(default)s; more give its speaker "
        "bootstrap more units, docs/corpus.md)",
    )
    parser.add_argument(
        "--read-sentences-per-speaker",
        type=int,
        default=_CorpusDefault("READ_SENTENCES_PER_SPEAKER"),
        metavar="M",
        help="read sentences per speaker of the `read` ABX set (default %(default)s)",
    )
    parser.add_argument(
        "--test-images",
        type=int,
        default=None,
        metavar="N",
        help="images of the test split (default: about a sixth of --images); train and val keep "
        "the scenes --images gives them",
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=None,
        metavar="SECONDS",
        help="wait at most this long for another build of OUT (default: until it ends; 0: refuse)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="processes that synthesise the speech (default: one per core, at most 4 and at most "
        "one per 256 utterances to make; 1: in this process). Same bytes whatever N",
    )
    add_progress_flag(parser)
    parser.set_defaults(func=_corpus)


def _variation(args: argparse.Namespace):
    """The Variation (or None: clean) that --variation and --snr ask for."""
    import dataclasses

    from training.corpus.variation import VARIATIONS

    variation = VARIATIONS[args.variation]
    if args.snr is None:
        return variation
    if variation is None:
        raise ValueError("--snr: a clean corpus has no noise (drop --clean or --snr)")
    try:
        low, high = (float(x) for x in args.snr.split(","))
    except ValueError:
        raise ValueError(f"--snr {args.snr!r}: expected LOW,HIGH in dB, e.g. 20,40") from None
    return dataclasses.replace(variation, snr=(low, high))


def _corpus(args: argparse.Namespace) -> int:
    import json

    from training.corpus import build_corpus

    # Another build of OUT raises LockedError: analysis.cli.main prints its one line (exit 2).
    root = build_corpus(
        args.out,
        images=_given(args.images),
        captions_per_image=args.captions_per_image,
        seed=args.seed,
        region_dim=_given(args.region_dim),
        variation=_variation(args),
        read_speakers=_given(args.read_speakers),
        read_sentences_per_speaker=_given(args.read_sentences_per_speaker),
        test_images=args.test_images,
        wait=args.wait,
        progress=not args.no_progress,
        workers=args.workers,
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
        "With --resume, every option left out takes the run's value and an option that differs "
        "from the run's is refused unless named in --allow-change. One process trains a run at a "
        "time. Several GPUs: torchrun --nproc-per-node N -m analysis.cli train ...",
    )
    parser.add_argument("corpus", help="corpus folder (SpokenCOCO layout with region features)")
    parser.add_argument("run", help="run directory (created; with --resume, continued)")
    parser.add_argument(
        "--preset", default=None, choices=("tiny", "small", "paper"), help="model size (tiny)"
    )
    parser.add_argument("--schedule", default=None, help="stages (default: the preset's, vgs+)")
    parser.add_argument("--stage-epochs", default=None, help="epochs per stage, e.g. 20,50")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    parser.add_argument(
        "--allow-change",
        action="append",
        default=[],
        metavar="FIELD",
        help="with --resume: let FIELD (lr, batch_size, corpus, schedule, ...) differ from the "
        "run's; the change is recorded in config.json. Repeatable, or comma-separated",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument("--batch-size", type=int, default=None, help="global batch size")
    parser.add_argument("--init-from", default=None, help="start from this checkpoint's weights")
    add_regions_option(parser)
    add_resample_option(parser)
    add_allow_outside_option(parser)
    parser.add_argument("--epochs-per-eval", type=int, default=None, help="validate every N epochs")
    parser.add_argument("--eval-split", default=None, help="split for validation recall (val)")
    parser.add_argument("--lr", type=float, default=None, help="peak learning rate")
    parser.add_argument("--seed", type=int, default=None, help="seed of init, data order, masks")
    parser.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="torch.compile the model",
    )
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
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="torch CPU threads (default: half the cores, at least 1: a busy neighbour then does "
        "not stall every step; docs/training.md)",
    )
    add_progress_flag(parser)
    parser.set_defaults(func=_train)


def _train(args: argparse.Namespace) -> int:
    """Options left out stay out of the call (None), so a resume takes the run's values."""
    import json

    from training.run.directory import METRICS
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
        "compile": args.compile,
    }
    overrides.update({k: v for k, v in named.items() if v is not None})
    allow = [name.strip() for item in args.allow_change for name in item.split(",") if name.strip()]
    # Another process training RUN raises LockedError: analysis.cli.main prints it (exit 2).
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
        regions=args.regions,
        allow_change=allow,
        progress=not args.no_progress,
        stop_after_epoch=args.stop_after_epoch,
        resample=args.resample,
        allow_outside=args.allow_outside_root,
        threads=args.threads,
        **overrides,
    )
    lines = (run / METRICS).read_text().splitlines()
    if lines:
        last = json.loads(lines[-1])
        shown = {k: round(v, 4) if isinstance(v, float) else v for k, v in last.items()}
        print(f"run {run}: last epoch {json.dumps(shown)}")
    return 0
