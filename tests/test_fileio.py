"""training.fileio: every file sslvgs writes goes through one atomic writer; these are its promises."""

from __future__ import annotations

import os
import stat

import pytest

from training.fileio import (
    write_atomic,
    write_bytes_atomic,
    write_json_atomic,
    write_text_atomic,
)


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_parts_are_written_in_order_and_replace_the_old_file(tmp_path):
    target = tmp_path / "sub" / "file.bin"
    write_bytes_atomic(target, b"old")
    write_bytes_atomic(target, b"head\n", b"body", sync_dir=True)
    assert target.read_bytes() == b"head\nbody"
    assert os.listdir(target.parent) == ["file.bin"]


def test_files_get_the_umask_not_mkstemps_private_mode(tmp_path, umask_022):
    for path in (
        write_text_atomic(tmp_path / "a.txt", "x"),
        write_json_atomic(tmp_path / "b.json", {"a": 1}),
        write_atomic(tmp_path / "c.csv", lambda tmp: tmp.write_text("1,2\n")),
    ):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


def test_a_writer_that_fails_leaves_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "table.csv"
    write_text_atomic(target, "complete\n")

    def half_then_fail(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_atomic(target, half_then_fail)
    assert target.read_text() == "complete\n"
    assert os.listdir(tmp_path) == ["table.csv"]


def test_a_process_killed_before_the_rename_leaves_only_a_dot_tmp_file(tmp_path, monkeypatch):
    """The corpus builder and the trainer remove leftovers by the pattern `.NAME.*.tmp`."""
    real_unlink = os.unlink
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(SystemExit(9)))
    monkeypatch.setattr("pathlib.Path.unlink", lambda self, missing_ok=False: None)  # no cleanup
    with pytest.raises(SystemExit):
        write_text_atomic(tmp_path / "epoch_0001.pt", "x")
    (left,) = tmp_path.iterdir()
    assert left.name.startswith(".epoch_0001.pt.") and left.name.endswith(".tmp")
    assert list(tmp_path.glob(".epoch_*.tmp")) == [left]
    real_unlink(left)


def test_a_full_disk_names_the_file_being_written(tmp_path, monkeypatch):
    """write() reports ENOSPC with no file name; the error that reaches the user has one."""
    import errno

    def full(tmp):
        raise OSError(errno.ENOSPC, "No space left on device")

    target = tmp_path / "corpus" / "wavs" / "u1.wav"
    with pytest.raises(
        OSError, match=r"\[Errno 28\] No space left on device: '.*corpus/wavs/u1\.wav'"
    ):
        write_atomic(target, full)
    assert os.listdir(target.parent) == []
    real_fsync = os.fsync
    monkeypatch.setattr(
        os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full"))
    )
    with pytest.raises(OSError, match="u1.wav") as caught:
        write_bytes_atomic(target, b"data")
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(target)
    monkeypatch.setattr(os, "fsync", real_fsync)
    with pytest.raises(FileNotFoundError, match="elsewhere"):  # an error naming its own file stays
        write_atomic(target, lambda tmp: open(tmp_path / "elsewhere" / "x"))
