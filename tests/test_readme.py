"""The README's Python example runs as printed (fresh folder, the embedded corpus), and its links
point at pages that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from markdown_blocks import isolate, python_blocks, run_blocks

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"


def test_readme_links_point_into_the_tree() -> None:
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README.read_text())
    assert links, "the README links into docs/"
    missing = [link for link in links if "://" not in link and not (REPO / link).exists()]
    assert not missing


@pytest.mark.slow
def test_readme_example_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    blocks = python_blocks(README)
    assert len(blocks) == 1 and len(blocks[0].strip().splitlines()) <= 10
    monkeypatch.chdir(tmp_path)
    isolate(tmp_path, monkeypatch)
    namespace = run_blocks(README)
    printed = capsys.readouterr().out
    assert "layer" in printed and "speech_to_image" in printed
    grid = namespace["grid"]
    assert grid.dims == ("epoch", "layer") and grid.sizes == {"epoch": 2, "layer": 3}
    assert (tmp_path / "heatmap.png").stat().st_size > 0
