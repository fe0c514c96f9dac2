"""`sslvgs`: every named error is one line on stderr and exit status 2; a bug keeps its traceback."""

from __future__ import annotations

import errno

import pytest

import probes.activations
from analysis.cli import main
from training.corpus.espeak import EspeakError
from training.fileio import LockedError


def run_extract_raising(error, monkeypatch, capsys, tmp_path):
    def fail(*_, **__):
        raise error

    monkeypatch.setattr(probes.activations, "extract", fail)
    status = main(["extract", str(tmp_path / "run"), str(tmp_path), "--out", str(tmp_path / "s")])
    return status, capsys.readouterr().err


@pytest.mark.parametrize(
    "error, line",
    [
        (
            LockedError("/r/run: the run is being written by another process"),
            "/r/run: the run is being written by another process",
        ),
        (
            EspeakError("espeak-ng failed on utterance 3:\n  voice not found"),
            "espeak-ng failed on utterance 3: voice not found",
        ),
        (
            ValueError("first problem\nsecond problem"),
            "first problem; second problem",
        ),
        (
            OSError(errno.ENOSPC, "No space left on device", "/r/s.zarr"),
            "[Errno 28] No space left on device: '/r/s.zarr'",
        ),
    ],
    ids=["LockedError (a RuntimeError)", "EspeakError (a RuntimeError)", "ValueError", "OSError"],
)
def test_a_named_error_is_one_line_and_exit_2(error, line, monkeypatch, capsys, tmp_path):
    status, err = run_extract_raising(error, monkeypatch, capsys, tmp_path)
    assert status == 2
    assert err == f"sslvgs extract: error: {line}\n"


def test_a_bug_keeps_its_traceback(monkeypatch, capsys, tmp_path):
    with pytest.raises(TypeError, match="unsupported operand"):
        run_extract_raising(TypeError("unsupported operand"), monkeypatch, capsys, tmp_path)
    with pytest.raises(RuntimeError, match="a library's own"):
        run_extract_raising(RuntimeError("a library's own"), monkeypatch, capsys, tmp_path)
