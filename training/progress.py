"""One progress bar for every loop of the library: in a Jupyter kernel one updating widget (tqdm's
notebook display) when ipywidgets can be imported, tqdm's plain bar otherwise (a terminal, a script,
a kernel without ipywidgets). Never ``tqdm.auto``, which warns "IProgress not found" in a kernel
without ipywidgets.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from functools import cache
from importlib.util import find_spec
from typing import Any

__all__ = ["add_progress_flag", "in_notebook", "progress_bar"]


def in_notebook() -> bool:
    """True inside a Jupyter kernel (an IPython shell talking to a front end over ZMQ)."""
    if "ipykernel" not in sys.modules:
        return False
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return type(shell).__name__ == "ZMQInteractiveShell"


@cache
def _has_widgets() -> bool:
    return find_spec("ipywidgets") is not None


def progress_bar(iterable: Iterable | None = None, **options: Any):
    """A tqdm bar over `iterable` (or a manual one with ``total=``); `options` are tqdm's
    (``desc``, ``total``, ``unit``, ``disable``, ``leave``, ...)."""
    if in_notebook() and _has_widgets():
        from tqdm.notebook import tqdm
    else:
        from tqdm.std import tqdm
    return tqdm(iterable, **options)


def add_progress_flag(parser: argparse.ArgumentParser) -> None:
    """``--no-progress`` (sets ``args.no_progress``), the one switch of every subcommand; ``--quiet``
    is kept as a hidden alias so that older scripts still work."""
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--quiet", dest="no_progress", action="store_true", help=argparse.SUPPRESS)
