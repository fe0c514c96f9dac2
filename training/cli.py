"""`sslvgs corpus` and `sslvgs train`."""

from __future__ import annotations

import argparse

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the training subcommands (corpus, train)."""
