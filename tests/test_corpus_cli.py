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


def test_a_second_build_of_one_folder_waits_or_refuses_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Another process building OUT holds `OUT.lock`: --wait 0 refuses naming the folder, a wait that
    runs out says how long it waited, and nothing is written meanwhile."""
    import subprocess
    import sys

    out = tmp_path / "corpus"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from training.fileio import exclusive\n"
         f"with exclusive({str(out)!r}, what='the corpus build'):\n"
         "    print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(["corpus", str(out), "--images", "3", "--wait", "0", "--no-progress"]) == 2
        error = capsys.readouterr().err.strip()
        assert str(out) in error and "being written by another process" in error
        assert len(error.splitlines()) == 1
        assert main(["corpus", str(out), "--images", "3", "--wait", "0.5", "--no-progress"]) == 2
        error = capsys.readouterr().err.strip().splitlines()
        assert "waiting for another process" in error[0] and "after 0.5 s" in error[-1]
        assert not out.exists()
    finally:
        holder.kill()
        holder.wait()


def test_a_full_disk_names_the_file_being_written(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    import training.corpus.speech as speech_module

    real = speech_module.write_bytes_atomic

    def full_disk(path, *parts, **kwargs):
        if str(path).endswith(".wav"):
            raise OSError(errno.ENOSPC, "No space left on device")  # as a failing write() says it
        return real(path, *parts, **kwargs)

    monkeypatch.setattr(speech_module, "write_bytes_atomic", full_disk)
    out = tmp_path / "corpus"
    assert main(["corpus", str(out), "--images", "3", "--no-progress", "--workers", "1"]) == 2
    error = capsys.readouterr().err.strip()
    assert "No space left on device" in error and len(error.splitlines()) == 1
    assert str(out / "wavs" / "train" / "scene_00000_0.wav") in error


def test_variation_options(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "c"
    for bad, says in ((["--snr", "5"], "expected LOW,HIGH"), (["--snr", "30,10"], "is empty"),
                      (["--clean", "--snr", "5,10"], "no noise")):  # fmt: skip
        assert main(["corpus", str(out), "--images", "3", "--no-progress", *bad]) == 2
        assert says in capsys.readouterr().err
    assert not out.exists()


def test_workers_option(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "c"
    assert main(["corpus", str(out), "--images", "3", "--no-progress", "--workers", "0"]) == 2
    error = capsys.readouterr().err.strip()
    assert "workers must be at least 1, got 0" in error and len(error.splitlines()) == 1
    assert not out.exists()
