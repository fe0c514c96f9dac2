"""`sslvgs train` on a run another process is training: refused at once by name, one line on stderr
and exit status 2 (the same line every named error gets), the run left as it was."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from analysis.cli import main
from training.fileio import exclusive


def snapshot(run: Path) -> dict[str, bytes]:
    return {str(f.relative_to(run)): f.read_bytes() for f in sorted(run.rglob("*")) if f.is_file()}


def test_train_on_a_locked_run_is_one_line_and_exit_2(
    tiny_run: Path, small_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = Path(shutil.copytree(tiny_run, tmp_path / "run"))
    before = snapshot(run)
    # The trainer's own lock (a flock on <run>.lock): another open of it conflicts, even in-process.
    with exclusive(run.resolve(), what="the run", wait=0):
        status = main(["train", str(small_corpus), str(run), "--resume", "--no-progress"])
    assert status == 2
    captured = capsys.readouterr()
    assert captured.err == (
        f"sslvgs train: error: {run.resolve()}: the run is being written by another process\n"
    )
    assert captured.out == ""
    assert snapshot(run) == before
