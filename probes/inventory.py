"""The inventory that proves an activation store whole: every file it vouches for, with its size and
CRC-32, recorded when the store is completed and checked when it is opened.

A store marked complete holds `sslvgs-inventory.json` (written before the mark, so the mark vouches for
it; the mark carries the inventory's own CRC-32). Checking reads every chunk once per process: after
a full check, a process re-checks a store by `stat` alone (size, mtime, inode of every file) and
re-reads only when one of them changed. docs/caches.md gives the measured cost.
"""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path
from typing import Any

__all__ = ["INVENTORY", "take_inventory", "inventory_problem", "forget"]

INVENTORY = "sslvgs-inventory.json"
# Files the inventory cannot vouch for: the group header (written after it, holding the mark and the
# inventory's checksum), the inventory itself, and zarr's temp files of a killed write.
_ROOT_HEADER = "zarr.json"
_BLOCK = 1 << 22

# Stores this process has checked in full: path -> stat signature of their files at that time.
_checked: dict[Path, tuple] = {}


def crc32_of(path: Path) -> int:
    """CRC-32 of a file's bytes, read in blocks of 4 MiB."""
    crc = 0
    with open(path, "rb") as handle:
        while block := handle.read(_BLOCK):
            crc = zlib.crc32(block, crc)
    return crc


def take_inventory(store: Path) -> dict[str, Any]:
    """The inventory of `store` as it is on disk now: {"algorithm", "files": {relative path: [size,
    crc32]}}, files in sorted order (so the same store gives the same bytes)."""
    files = {
        relative: [(store / relative).stat().st_size, crc32_of(store / relative)]
        for relative in _vouched_files(store)
    }
    return {"algorithm": "crc32", "files": files}


def inventory_bytes(inventory: dict[str, Any]) -> bytes:
    return (json.dumps(inventory, indent=0, sort_keys=True) + "\n").encode()


def inventory_problem(store: Path, expected_crc: int | None) -> str | None:
    """What is wrong with the files of a store marked complete, or None when all are as recorded.

    Args:
        expected_crc: the CRC-32 of the inventory file that the store's completion mark records.
    Returns:
        one clause naming the first problem ("chunk activations/c/0/2/0 is missing", ...).
    """
    listing = store / INVENTORY
    try:
        raw = listing.read_bytes()
    except FileNotFoundError:
        return f"its chunk inventory {INVENTORY} is missing"
    if expected_crc is None or zlib.crc32(raw) != expected_crc:
        return f"its chunk inventory {INVENTORY} does not match the checksum its header records"
    try:
        files = json.loads(raw)["files"]
    except (ValueError, KeyError, TypeError):
        return f"its chunk inventory {INVENTORY} cannot be read"
    signature = _signature(store, files)
    if signature is not None and _checked.get(store.resolve()) == signature:
        return None
    for relative, (size, crc) in files.items():
        path, what = store / relative, "chunk" if "/c/" in relative else "file"
        if not path.is_file():
            return f"{what} {relative} is missing"
        if path.stat().st_size != size:
            return f"{what} {relative} holds {path.stat().st_size} bytes, its inventory says {size}"
        if crc32_of(path) != crc:
            return f"{what} {relative} fails its checksum (CRC-32 differs from the inventory's)"
    remember(store, files)
    return None


def remember(store: Path, files: dict[str, Any]) -> None:
    """Record that `store`'s files are as inventoried (a writer that just checksummed them)."""
    signature = _signature(store, files)
    if signature is not None:
        _checked[store.resolve()] = signature


def forget(store: Path) -> None:
    """Drop what this process knew of `store` (it is being removed or rebuilt)."""
    _checked.pop(Path(store).resolve(), None)


def _signature(store: Path, files: dict[str, Any]) -> tuple | None:
    """(size, mtime, inode) of the root header and every inventoried file; None if one is missing."""
    try:
        stats = [os.stat(store / name) for name in (_ROOT_HEADER, *files)]
    except OSError:
        return None
    return tuple((s.st_size, s.st_mtime_ns, s.st_ino) for s in stats)


def _vouched_files(store: Path) -> list[str]:
    found = []
    for folder, _, names in os.walk(store):
        for name in names:
            relative = (Path(folder) / name).relative_to(store).as_posix()
            if relative in (_ROOT_HEADER, INVENTORY) or name.endswith(".partial"):
                continue
            found.append(relative)
    return sorted(found)
