"""What a grid's cache key hashes: probe options as canonical JSON values, files, folders and
checkpoints by what they hold (not where they are), and a user's probe function by its code.

Separate from the registry (ProbeSpec.key puts these together) so that other caches keyed the
same way (recall_grid.py) need none of the probes. A change here changes every cached grid's
key: the strings these functions return must stay as they are.
"""

from __future__ import annotations

import hashlib
import numbers
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__: list[str] = []  # nothing public: registry.py is their door


def _function_identity(function: Callable[..., Any]) -> str:
    """Module, name and a hash of the bytecode: editing a user's probe function invalidates its cache."""
    function = getattr(function, "wrapped", function)
    code = getattr(function, "__code__", None)
    digest = (
        hashlib.sha256(code.co_code + repr(code.co_consts).encode()).hexdigest()[:8] if code else ""
    )
    return f"{getattr(function, '__module__', '')}.{getattr(function, '__qualname__', '')}:{digest}"


def _canonical(value: Any) -> Any:
    """A JSON value standing for `value` in the cache key: arrays and tables by content."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, Path):
        return str(value.resolve())
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(value.items())}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, np.ndarray):
        return {"array": hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()[:16]}
    if hasattr(value, "to_csv"):  # a pandas table, e.g. an item table from read_items
        return {"table": hashlib.sha256(value.to_csv().encode()).hexdigest()[:16]}
    raise ValueError(
        f"probe option of type {type(value).__name__} cannot be part of a cache key; pass a path, "
        "a number, a string, a list, an array or a table"
    )


def _path_identity(value: Any) -> Any:
    """What a path option stands for in a cache key: a file's content hash, a checkpoint's (or a
    run's last checkpoint's) checksum, a corpus's manifest hash, another folder's listing (names and
    sizes); a list element-wise; anything that is not an existing path as `_canonical` gives it."""
    if isinstance(value, list | tuple):
        return [_path_identity(v) for v in value]
    if not isinstance(value, str | os.PathLike):
        return _canonical(value)
    path = Path(value)
    try:
        if path.is_file():
            if path.suffix == ".pt":
                import training

                return {"model": training.model_identity(path)}
            return {"file": _file_hash(path)}
        if path.is_dir():
            from training.run.directory import is_run, list_checkpoints

            if is_run(path) and list_checkpoints(path):
                import training

                return {"run": training.model_identity(list(list_checkpoints(path).values())[0])}
            if (path / "manifest.json").is_file():
                return {"corpus": _file_hash(path / "manifest.json")}
            return {"folder": _folder_listing_hash(path)}
    except OSError:
        pass
    return _canonical(value)


def _folder_listing_hash(folder: Path) -> str:
    """Hash of a folder's listing: every file below it, its relative name and size. Walked with
    os.walk and os.stat rather than Path.rglob: a corpus's regions/ folder (2,000 files) in 7 ms
    against 34, and the reproduction's probe step keys its grids by it 193 times."""
    listing = []
    for directory, _, files in os.walk(folder):
        relative = os.path.relpath(directory, folder)
        for name in files:
            try:
                size = os.stat(os.path.join(directory, name)).st_size
            except FileNotFoundError:  # a broken link: not a file
                continue
            listing.append(f"{name if relative == '.' else os.path.join(relative, name)}|{size}")
    return hashlib.sha256("\n".join(sorted(listing)).encode()).hexdigest()[:16]


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]
