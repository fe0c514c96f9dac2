"""`sslvgs extract`, `sslvgs abx` and `sslvgs recall`."""

from __future__ import annotations

import argparse

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the probe subcommands (extract, abx, recall)."""
