"""The documentation site builds with warnings as errors (mkdocs --strict: broken links, missing
pages, docstrings mkdocstrings cannot parse), and the tree points into docs/, never outside it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
PACKAGES = ("training", "probes", "analysis")


def test_site_builds_strict(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "WARNING" not in done.stderr
    for page in ("index.html", "abx/index.html", "api/probes/index.html"):
        assert (tmp_path / "site" / page).is_file()
    # the API reference is generated from the docstrings, signatures included
    api = (tmp_path / "site" / "api" / "probes" / "index.html").read_text()
    assert "probes.abx_probe.abx" in api and "speaker" in api


def test_every_page_is_in_the_nav() -> None:
    config = (REPO / "mkdocs.yml").read_text()
    listed = set(re.findall(r":\s*([\w/.-]+\.md)\s*$", config, re.M))
    pending = set(re.findall(r"docs/([\w/.-]+\.md)", config))  # pages other work adds later
    pages = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}
    assert pages - pending <= listed, "a page missing from mkdocs.yml's nav"
    assert listed <= pages


@pytest.mark.parametrize("folder", [*PACKAGES, "tests", "notebooks", "docs"])
def test_nothing_points_outside_the_project(folder: str) -> None:
    offenders = [
        str(path.relative_to(REPO))
        for path in (REPO / folder).rglob("*")
        if path.suffix in (".py", ".pyi", ".md", ".ipynb")
        and path.name != Path(__file__).name
        and "DESIGN.md" in path.read_text(encoding="utf-8")
    ]
    assert not offenders


TUTORIALS = ("train", "probe-checkpoint", "grid", "forgetting", "probe-pretrained")


@pytest.mark.slow
def test_tutorials_run_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every tutorial's code blocks, in the reading order, in one folder (they build on each other).
    The tutorials build the default (natural) corpus themselves; the session corpus is the clean one."""
    from markdown_blocks import isolate, run_blocks

    monkeypatch.chdir(tmp_path)
    isolate(tmp_path, monkeypatch)
    for name in TUTORIALS:
        run_blocks(DOCS / "tutorials" / f"{name}.md")
    assert (tmp_path / "runs" / "vgs+" / "analysis").is_dir()
