"""Command-line options shared by every command that reads data (no heavy imports: CLI start-up)."""

from __future__ import annotations

import argparse

__all__ = ["add_regions_option", "add_allow_outside_option", "add_resample_option"]


def add_regions_option(parser: argparse.ArgumentParser) -> None:
    """``--regions PATH...``: region features in any layout `training.data.open_regions` reads."""
    parser.add_argument(
        "--regions",
        nargs="+",
        default=None,
        metavar="PATH",
        help="region features: a folder of .npz, LXMERT obj36 TSV(s) or FaST-VGS HDF5 file(s) "
        "(default: the corpus's regions/)",
    )


def add_allow_outside_option(parser: argparse.ArgumentParser) -> None:
    """``--allow-outside-root``: read data paths that leave their folder (refused by default)."""
    parser.add_argument(
        "--allow-outside-root",
        action="store_true",
        help="read wav paths (split files) and #file paths (item files) that leave their folder",
    )


def add_resample_option(parser: argparse.ArgumentParser) -> None:
    """``--resample``: resample audio at another rate than the model's (refused by default)."""
    parser.add_argument(
        "--resample", action="store_true", help="resample audio at another rate than the model's"
    )
