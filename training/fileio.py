"""Atomic, reproducible file writes, and the lock that shared writers take: the one place where sslvgs
puts a file on disk.

Atomic: the data goes to a temp file in the same folder (named `.NAME.XXXXXXXX.tmp`, so a builder can
recognise and remove the leftovers of a killed run), is fsynced and moved over the target with
os.replace. A reader (another process, a resumed run) sees the old file or the new one, never half of
one, and "the file exists" means "the file is done". `sync_dir=True` also fsyncs the folder, so the
rename itself survives a power cut (checkpoints ask for it).
Permissions: the file gets the usual 0o666 less the umask, not the 0o600 of `tempfile.mkstemp`.
Reproducible: nothing time-dependent goes into a file (`write_npz` fixes each zip member's timestamp
and mode instead of leaving them to numpy's zip writer).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "write_atomic",
    "write_bytes_atomic",
    "write_text_atomic",
    "write_json_atomic",
    "write_npz",
    "npz_bytes",
    "exclusive",
    "LockedError",
    "naming_os_errors",
]

_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry


def _create_temp(path: Path) -> Path:
    """An empty, new temp file next to `path`, created with mode 0o666 so that the umask applies."""
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:  # 1 in 4 billion: draw another name
            continue
        return tmp


def _fsync(path: Path, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path | str, write: Callable[[Path], Any], *, sync_dir: bool = False) -> Path:
    """Call `write(tmp)` on a temp file next to `path`, fsync it and move it onto `path`.

    For writers that want a file name (matplotlib, xarray, pandas): tell them the format explicitly,
    since the temp name ends in `.tmp`. Whatever `write` raises, the temp file is removed.
    """
    path = Path(path)
    with naming_os_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _create_temp(path)
        try:
            write(tmp)
            _fsync(tmp, os.O_RDONLY)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    if sync_dir:
        _fsync(path.parent, os.O_RDONLY)
    return path


def write_bytes_atomic(path: Path | str, *parts: bytes, sync_dir: bool = False) -> Path:
    """Write the concatenation of `parts` to `path` atomically (parts: no need to join big buffers)."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            for part in parts:
                handle.write(part)

    return write_atomic(path, write, sync_dir=sync_dir)


def write_text_atomic(path: Path | str, text: str) -> Path:
    """Write UTF-8 `text` to `path` atomically."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path | str, data: Any, indent: int | None = 1) -> Path:
    """Write `data` as JSON to `path` atomically."""
    return write_text_atomic(path, json.dumps(data, indent=indent))


def npz_bytes(**arrays: np.ndarray) -> bytes:
    """The bytes of an uncompressed .npz (readable by np.load) with fixed member timestamps."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            archive.writestr(info, member.getvalue())
    return buffer.getvalue()


def write_npz(path: Path | str, **arrays: np.ndarray) -> Path:
    """Write `arrays` as an .npz at `path`, atomically and byte-for-byte reproducibly."""
    return write_bytes_atomic(path, npz_bytes(**arrays))


@contextlib.contextmanager
def naming_os_errors(path: Path | str) -> Iterator[None]:
    """Re-raise an OSError that names no file as the same error naming `path`.

    A full disk's `[Errno 28]` comes from write(), which knows no file name; wrapped in this, the
    error every user sees says which file was being written.
    """
    try:
        yield
    except OSError as err:
        if err.filename is not None or err.errno is None:
            raise
        try:
            named = type(err)(err.errno, err.strerror, str(path))
        except TypeError:  # a subclass with another constructor
            named = OSError(err.errno, err.strerror, str(path))
        raise named from err


class LockedError(RuntimeError):
    """Another process holds the lock on a shared file or folder; the message names both."""


@contextlib.contextmanager
def exclusive(
    target: Path | str,
    *,
    what: str,
    wait: float | None = None,
    notify: Callable[[str], Any] = print,
) -> Iterator[None]:
    """Hold the lock ``<target>.lock`` (a `filelock.FileLock`, released by the OS when a process dies,
    so a stale lock of a killed process never blocks) while writing `target`.

    Args:
        target: the shared thing written under the lock (a store, a run directory, a cache file).
        what: a few words for messages ("the activation store", "the run").
        wait: seconds to wait for another writer (None: as long as it takes; 0: refuse at once).
        notify: called once with a message when another process holds the lock and we wait.
    Raises:
        LockedError: the lock was still held after `wait` seconds.
    """
    from filelock import FileLock, Timeout

    target = Path(target)
    lock_path = target.parent / f"{target.name}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(lock_path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if wait == 0:
            raise LockedError(f"{target}: {what} is being written by another process") from None
        notify(f"{target}: waiting for another process writing {what} ...")
        try:
            lock.acquire(timeout=-1 if wait is None else wait)
        except Timeout:
            raise LockedError(
                f"{target}: {what} is still being written by another process after {wait:g} s"
            ) from None
    try:
        yield
    finally:
        lock.release()
