"""Atomic, reproducible file writes for the corpus generator.

Atomic: a temp file in the same folder, fsync, os.replace, so an interrupted build leaves each file
either complete or absent, and "the file exists" means "the file is done" when a build resumes.
Reproducible: nothing time-dependent goes into a file (np.savez stamps the zip members with the
current time; `write_npz` does not).
"""

from __future__ import annotations

import io
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["write_bytes_atomic", "write_text_atomic", "write_npz", "npz_bytes"]

_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry


def write_bytes_atomic(path: Path | str, data: bytes) -> Path:
    """Write `data` to `path` via a temp file in the same folder, fsync and os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: Path | str, text: str) -> Path:
    """Write UTF-8 `text` to `path` atomically."""
    return write_bytes_atomic(path, text.encode("utf-8"))


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
