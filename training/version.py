"""The distribution's version, one source of truth: pyproject.toml's ``version``, read from the
installed metadata. ``__version__`` of ``training``, ``probes`` and ``analysis`` is resolved on first
use, so ``import probes`` does not pay for ``importlib.metadata`` (about 40 ms).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from functools import cache

__all__ = ["add_version_flag", "package_version", "with_version"]

DISTRIBUTION = "sslvgs"


@cache
def package_version() -> str:
    """The installed ``sslvgs`` version (``"0+unknown"`` when run from a tree that is not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "0+unknown"


def with_version(
    getattr_: Callable[[str], object], dir_: Callable[[], list[str]], all_: list[str]
) -> tuple[Callable[[str], object], Callable[[], list[str]], list[str]]:
    """lazy_loader's ``(__getattr__, __dir__, __all__)`` with ``__version__`` added, lazily."""

    def __getattr__(name: str) -> object:
        return package_version() if name == "__version__" else getattr_(name)

    def __dir__() -> list[str]:
        return [*dir_(), "__version__"]

    return __getattr__, __dir__, all_


class _VersionAction(argparse.Action):
    # argparse's own "version" action needs the string when the parser is built; this one reads the
    # metadata only when --version is given, so building the parser (every command) stays cheap.
    def __init__(self, option_strings: list[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:  # noqa: ANN001
        print(f"{parser.prog} {package_version()}")
        parser.exit()


def add_version_flag(parser: argparse.ArgumentParser) -> None:
    """``--version``: print ``<prog> <version>`` and exit."""
    parser.add_argument("--version", action=_VersionAction, help="print the version and exit")
