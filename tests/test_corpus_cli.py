"""`sslvgs corpus OUT [--images N] [--captions-per-image K] [--seed S]`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analysis.cli import main


def test_corpus_command_builds_and_says_where(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "corpus"
    args = ["corpus", str(out), "--images", "3", "--captions-per-image", "2", "--seed", "5"]
    assert main([*args, "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert str(out.resolve()) in printed
    settings = json.loads((out / "manifest.json").read_text())["settings"]
    assert (settings["images"], settings["captions_per_image"], settings["seed"]) == (3, 2, 5)
    entries = json.loads((out / "spokencoco_test.json").read_text())["data"]
    assert all(len(entry["captions"]) == 2 for entry in entries)
    # running it again on the finished corpus changes nothing and still succeeds
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert main([*args, "--no-progress"]) == 0
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_corpus_command_reports_bad_arguments_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["corpus", str(tmp_path / "c"), "--images", "2", "--no-progress"]) == 2
    error = capsys.readouterr().err.strip()
    assert "at least 3" in error and len(error.splitlines()) == 1
