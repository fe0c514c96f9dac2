"""Run the fenced ```python blocks of a Markdown page, in order, in one namespace (as a notebook would).

Used by tests/test_readme.py and tests/test_docs.py, so the examples users copy are the ones tested.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest

FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.S | re.M)


def python_blocks(page: Path) -> list[str]:
    """The source of each fenced python block of `page`, in order."""
    return FENCE.findall(page.read_text(encoding="utf-8"))


def run_blocks(page: Path, namespace: dict | None = None) -> dict:
    """Execute every python block of `page` in one namespace; a failure names the page and block."""
    namespace = {"__name__": "__markdown__"} if namespace is None else namespace
    for number, source in enumerate(python_blocks(page), start=1):
        code = compile(source, f"{page.name}[block {number}]", "exec")
        exec(code, namespace)  # noqa: S102 - the page's own examples, run as a reader would
    return namespace


def isolate(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Caches and temporary files of the examples inside `folder`: other processes sharing /tmp
    (test runs beside this one) never see or tidy them."""
    (folder / "tmp").mkdir(exist_ok=True)
    monkeypatch.setenv("SSLVGS_CACHE", str(folder / "cache"))
    monkeypatch.setenv("TMPDIR", str(folder / "tmp"))
    monkeypatch.setattr(tempfile, "tempdir", str(folder / "tmp"))
