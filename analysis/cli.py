"""The `sslvgs` command line.

Each package registers its own subcommands (``register(subparsers)``), so the dependency rule of
docs/index.md holds: this module, at the bottom of the data flow, is the only one that sees all three.
Handlers import their heavy modules lazily, so ``sslvgs --help`` is fast.
"""

from __future__ import annotations

import argparse
import sys

from probes.vocabulary import CONTEXTS, SPEAKERS
from training.data.options import add_regions_option
from training.progress import add_progress_flag
from training.version import add_version_flag

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    from probes import cli as probes_cli
    from training import cli as training_cli

    parser = argparse.ArgumentParser(
        prog="sslvgs",
        description="Train and probe speech models with wav2vec 2.0 and visually grounded objectives.",
    )
    add_version_flag(parser)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    training_cli.register(subparsers)
    probes_cli.register(subparsers)
    register(subparsers)
    return parser


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the analysis subcommands (grid, report, reproduce)."""
    _register_grid(subparsers)
    _register_report(subparsers)
    _register_reproduce(subparsers)


def _register_grid(subparsers: argparse._SubParsersAction) -> None:
    from probes.cli import parse_layers

    parser = subparsers.add_parser(
        "grid",
        help="a probe at every epoch and layer of a run (cached beside the run)",
        description="Probe every checkpoint of RUN at every layer; print the (epoch x layer) grid. "
        "Cells are cached in RUN/analysis/, so a second call computes only what is missing.",
    )
    parser.add_argument("run", help="run directory (config.json, checkpoints/, metrics.jsonl)")
    parser.add_argument("--probe", default="abx", choices=["abx", "phone", "cka", "cka_run"])
    parser.add_argument(
        "--items", help="ABX: an item file, or a set of the corpus (captions, read)"
    )
    parser.add_argument("--corpus", help="corpus root, for --items SET (default: the run's)")
    parser.add_argument("--wavs", help="ABX: the item file's wavs (default: wavs/ beside it)")
    parser.add_argument("--speaker", choices=SPEAKERS, help="ABX speaker condition")
    parser.add_argument("--context", choices=CONTEXTS, help="ABX context condition")
    parser.add_argument(
        "--bootstrap", type=int, help="ABX: speaker resamples for an interval per cell (low, high)"
    )
    parser.add_argument("--confidence", type=float, help="with --bootstrap (default 0.95)")
    parser.add_argument("--device", help="where the model runs (cpu, cuda, ...; default cpu)")
    parser.add_argument(
        "--reference", help="cka: the checkpoint (or run: its last) to compare with"
    )
    parser.add_argument("--other", help="cka_run: the run to compare with at the same epochs")
    parser.add_argument("--epochs", default="all", help="'all', 'last' or a list like 1,5,10")
    parser.add_argument("--layers", type=parse_layers, default="all", help="all, 3, 0,4,8 or 2-5")
    parser.add_argument("--workers", type=int, default=0, help="dask worker processes (0: serial)")
    parser.add_argument("--out", help="also write the grid to this .nc or .csv file")
    add_progress_flag(parser)
    parser.set_defaults(func=_grid)


def _number_list(text: str) -> str | list[int]:
    if text in ("all", "last"):
        return text
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(
            f"expected 'all' or a comma-separated list of integers, not {text!r}"
        ) from None


GRID_OPTIONS = (
    "items", "corpus", "wavs", "speaker", "context", "reference", "other", "bootstrap",
    "confidence", "device",
)  # fmt: skip


def _grid(args: argparse.Namespace) -> int:
    from analysis.gridding.driver import grid

    options = {
        name: getattr(args, name) for name in GRID_OPTIONS if getattr(args, name) is not None
    }
    if args.probe not in ("abx", "phone"):
        options.pop("device", None)  # the similarity probes run where their models are
    if args.probe == "abx" and "items" not in options:
        raise ValueError("--probe abx needs --items (an item file, or a set name: captions, read)")
    client = _client(args.workers)
    try:
        result = grid(
            args.run,
            args.probe,
            _number_list(args.epochs),
            args.layers,
            client,
            progress=not args.no_progress,
            **options,
        )
    finally:
        if client is not None:
            client.close()
    print(f"# {args.probe} {options} on {args.run}")
    print(_grid_table(result).to_string(float_format=lambda v: f"{v:.4f}"))
    if args.out:
        _write_grid(result, args.out)
    return 0


def _grid_table(result):
    """The (epoch x layer) table; with intervals each cell reads 'value [low, high]'."""
    table = result.drop_vars(["checkpoint", "low", "high"], errors="ignore").to_pandas()
    if "low" not in result.coords:
        return table
    text = "{:.4f}".format
    low, high = result.low.to_pandas().map(text), result.high.to_pandas().map(text)
    return table.map(text) + " [" + low + ", " + high + "]"


def _client(workers: int):
    """A dask client of `workers` single-threaded worker processes (None for 0: serial). The client
    owns its cluster, so closing it stops the workers; no dashboard port is taken."""
    if workers <= 0:
        return None
    from distributed import Client

    return Client(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)


def _write_grid(result, out: str) -> None:
    from pathlib import Path

    from training.fileio import write_atomic, write_text_atomic

    path = Path(out)
    if path.suffix == ".csv":
        table = result.drop_vars("checkpoint").to_dataframe(name=result.name or "value")
        write_text_atomic(path, table.to_csv())
    elif path.suffix == ".nc":
        write_atomic(path, lambda tmp: result.to_netcdf(tmp, engine="scipy"))
    else:
        raise ValueError(f"--out {out}: expected a .nc or .csv file name")


def _register_report(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="figures, tables and forgetting of one or more runs",
        description="Probe the runs (cached), then write DIR/report.md with the paper's tables and "
        "figures, layer x epoch heatmaps and, for runs with a stage switch, forgetting and drift.",
    )
    parser.add_argument("runs", nargs="+", help="run directories")
    parser.add_argument("--out", required=True, help="folder for report.md, figures and tables")
    parser.add_argument("--corpus", help="corpus root (default: the one in the runs' config.json)")
    parser.add_argument(
        "--every", type=int, default=1, help="probe every N-th epoch (and the last)"
    )
    parser.add_argument(
        "--bootstrap", type=int, default=0, help="resamples for each grid cell's interval (0: none)"
    )
    parser.add_argument("--workers", type=int, default=0, help="dask worker processes (0: serial)")
    add_progress_flag(parser)
    parser.set_defaults(func=_report)


def _report(args: argparse.Namespace) -> int:
    from analysis.paper.report import report_runs

    client = _client(args.workers)
    try:
        path = report_runs(
            args.runs,
            args.out,
            corpus=args.corpus,
            every=args.every,
            bootstrap=args.bootstrap,
            client=client,
            jobs=args.jobs,
            threads=args.threads,
            progress=not args.no_progress,
        )
    finally:
        if client is not None:
            client.close()
    print(path)
    return 0


def _register_reproduce(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "reproduce",
        help="the paper end to end on the embedded corpus (resumable)",
        description="Build the corpus, train the 3 base models and the scheduled variants, probe "
        "them, and write OUT/report.md with the paper's tables, figures and claims. Finished steps "
        "are skipped when run again.",
    )
    parser.add_argument("out", help="output folder")
    parser.add_argument(
        "--preset", default=None, help="model preset (default: the plan's: compact, --quick tiny)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="a few minutes: fewer images, epochs, variants"
    )
    parser.add_argument("--images", type=int, help="corpus size (default: the plan's)")
    parser.add_argument(
        "--test-images",
        type=int,
        metavar="N",
        help="test images of the corpus reproduce builds (default: the plan's, 1000); test "
        "recall ranks them in folds of 200 (COCO's 1k protocol); not with --corpus",
    )
    parser.add_argument(
        "--train-captions",
        type=int,
        help="train on the first N training captions (0: all; default: the plan's, all)",
    )
    parser.add_argument("--stage-epochs", help="epochs before and after the switch, e.g. 20,50")
    parser.add_argument("--every", type=int, help="probe every N-th epoch (default: the plan's)")
    parser.add_argument("--corpus", help="use this existing corpus instead of building one in OUT")
    add_regions_option(parser)  # several paths: LXMERT's train2014 and val2014 TSVs, say
    parser.add_argument(
        "--seeds",
        type=int,
        help="train seeds 0..N-1 of every model (seed 0 in runs/<name>, seed k in "
        "runs/seed-k/<name>); the report gives the mean and between-seed spread (default: 1)",
    )
    parser.add_argument(
        "--bootstrap",
        type=int,
        help="resamples for the grids' per-cell intervals (default: the plan's; 0: none)",
    )
    parser.add_argument(
        "--read-speakers",
        type=int,
        metavar="N",
        help="speakers of the corpus's `read` ABX set, the units of claim 3's interval (default: "
        "the plan's, 12; --quick 4; more narrow it, docs/reproduction.md); not with --corpus",
    )
    parser.add_argument("--device", default="cpu", help="torch device for training and probing")
    parser.add_argument("--workers", type=int, default=0, help="dask worker processes for probing")
    parser.add_argument(
        "--jobs",
        type=int,
        default=None,
        metavar="N",
        help="models trained at once (default on the CPU: cores / --threads; on a GPU: 1)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="torch CPU threads of each training process (default: half the cores, at least 1)",
    )
    add_progress_flag(parser)
    parser.set_defaults(func=_reproduce)


def _reproduce(args: argparse.Namespace) -> int:
    import dataclasses

    from analysis.paper.reproduction import PLANS, reproduce

    plan = PLANS["quick" if args.quick else "default"]
    changes = {"images": args.images, "every": args.every, "seeds": args.seeds}
    changes["bootstrap"] = args.bootstrap
    changes["read_speakers"] = args.read_speakers
    changes["test_images"] = args.test_images
    if args.test_images is not None and args.corpus:
        raise ValueError(
            "--test-images sets the corpus that reproduce builds; with --corpus DIR, build DIR "
            "with `sslvgs corpus DIR --test-images N` instead"
        )
    if args.read_speakers is not None and args.corpus:
        raise ValueError(
            "--read-speakers sets the corpus that reproduce builds; with --corpus DIR, build DIR "
            "with `sslvgs corpus DIR --read-speakers N` instead"
        )
    if args.stage_epochs:
        stages = _number_list(args.stage_epochs)
        if not isinstance(stages, list) or len(stages) != 2 or min(stages) < 1:
            raise ValueError(
                f"--stage-epochs: expected two positive counts like 20,50, not {args.stage_epochs!r}"
            )
        changes.update(stage_a=stages[0], stage_b=stages[1])
    if args.train_captions is not None:
        overrides = dict(plan.overrides) | {"train_subset": args.train_captions}
        changes["overrides"] = tuple(overrides.items())
    plan = dataclasses.replace(plan, **{k: v for k, v in changes.items() if v is not None})
    client = _client(args.workers)
    try:
        path = reproduce(
            args.out,
            preset=args.preset,
            plan=plan,
            corpus=args.corpus,
            regions=args.regions,
            device=args.device,
            client=client,
            progress=not args.no_progress,
        )
    finally:
        if client is not None:
            client.close()
    print(path)
    return 0


def _exit_on_signals() -> None:
    """SIGTERM and SIGHUP end the command as Ctrl-C does: through every ``finally`` and context
    manager, so scratch folders and half-written files are cleaned up (``kill`` leaves nothing)."""
    import signal

    def stop(number, frame):
        raise KeyboardInterrupt(signal.Signals(number).name)

    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), stop)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _exit_on_signals()
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if not _named(err):
            raise  # a bug: its traceback is what a report of it needs
        # Bad input: one clear line, no traceback. Library errors name the file and entry themselves.
        print(f"sslvgs {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2


_PACKAGES = ("training", "probes", "analysis")


def _named(err: Exception) -> bool:
    """An error that tells the user what to fix: bad input (ValueError), a file's trouble (OSError),
    or any error class of sslvgs's own (LockedError, EspeakError, ...), wherever it derives from."""
    if isinstance(err, ValueError | OSError):
        return True
    return any(kind.__module__.partition(".")[0] in _PACKAGES for kind in type(err).__mro__)


def _one_line(err: Exception) -> str:
    """The message on one line (a multi-line message's lines joined by '; ')."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    text = ""
    for line in lines:
        text += line if not text else (" " if text.endswith(":") else "; ") + line
    return text or type(err).__name__


if __name__ == "__main__":
    sys.exit(main())
