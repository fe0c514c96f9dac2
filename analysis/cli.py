"""The `sslvgs` command line.

Each package registers its own subcommands (``register(subparsers)``), so the dependency rule of
DESIGN.md holds: this module, at the bottom of the data flow, is the only one that sees all three.
Handlers import their heavy modules lazily, so ``sslvgs --help`` is fast.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    from probes import cli as probes_cli
    from training import cli as training_cli

    parser = argparse.ArgumentParser(
        prog="sslvgs",
        description="Train and probe speech models with wav2vec 2.0 and visually grounded objectives.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    training_cli.register(subparsers)
    probes_cli.register(subparsers)
    register(subparsers)
    return parser


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the analysis subcommands (grid, report, reproduce)."""
    # Filled in by the analysis modules; kept here so the command list is in one place.


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, OSError) as err:
        # Bad input: one clear line, no traceback. Library errors name the file and entry themselves.
        print(f"sslvgs {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
