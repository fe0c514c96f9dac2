"""Reading an activation store (probes.store writes it): its header, the integrity check of a
complete store, and opening one as a lazy Dataset. The layout is in probes/store.py's docstring and
docs/formats.md; the check is docs/caches.md's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import xarray as xr
import zarr

from probes.inventory import inventory_problem

__all__ = [
    "open_store",
    "read_header",
    "store_problem",
    "IncompleteStoreError",
    "CorruptStoreError",
    "STORE_FORMAT",
]

# 2: completion writes a chunk inventory and marks the store complete last (1 marked it first).
STORE_FORMAT = 2
KNOWN_FORMATS = (1, STORE_FORMAT)


class IncompleteStoreError(ValueError):
    """A store whose extraction was interrupted: extract again to resume it."""


class CorruptStoreError(ValueError):
    """A store marked complete that fails its check (a missing or damaged chunk, no metadata...)."""


def read_header(path: str | Path) -> dict[str, Any] | None:
    """The attributes of the store at `path` (any format we wrote), or None if it is not one."""
    try:
        group = zarr.open_group(path, mode="r", use_consolidated=False)
        attrs = dict(group.attrs)
    except Exception:  # noqa: BLE001  (a missing, foreign or torn header all mean "not a store")
        return None
    return attrs if attrs.get("format") in KNOWN_FORMATS else None


def open_store(path: str | Path, *, verify: bool = True) -> xr.Dataset:
    """Open a complete store lazily (dask arrays: nothing is read until used).

    Args:
        verify: check every chunk against the store's inventory first (a full read the first
            time this process opens the store, `stat` alone afterwards; docs/caches.md).
    Raises:
        FileNotFoundError: no store at `path`.
        IncompleteStoreError: an interrupted extraction.
        CorruptStoreError: a store marked complete that fails its check (the message says why).
    """
    path = Path(path)
    header = read_header(path)
    if header is None:
        raise FileNotFoundError(f"{path}: not an activation store (no zarr group with our header)")
    if not header.get("complete"):
        raise IncompleteStoreError(
            f"{path}: extraction was interrupted after {header['batches_done']} batches; "
            "call probes.extract again with the same model and source to resume it"
        )
    problem = store_problem(path, header) if verify else None
    if problem is None:
        try:
            return xr.open_zarr(path, consolidated=True)
        except Exception as err:  # noqa: BLE001  (whatever zarr raises, the store is unreadable)
            problem = f"it cannot be opened ({_one_line(err)})"
    raise CorruptStoreError(
        f"{path}: {problem}; call probes.extract again with the same model and source to rebuild it"
    )


def store_problem(path: str | Path, header: dict[str, Any] | None = None) -> str | None:
    """Why the complete store at `path` cannot be trusted, or None when it is whole.

    Checks the format, every inventoried file (present, its size, its CRC-32) and that zarr
    opens the consolidated metadata.
    """
    path = Path(path)
    header = read_header(path) if header is None else header
    if header is None:
        return "its header cannot be read"
    if header.get("format") != STORE_FORMAT:
        return f"it was written in store format {header.get('format')} (this sslvgs reads {STORE_FORMAT})"
    problem = inventory_problem(path, header.get("inventory_crc32"))
    if problem is not None:
        return problem
    try:
        zarr.open_consolidated(path, mode="r")
    except Exception as err:  # noqa: BLE001
        return f"its consolidated metadata cannot be read ({_one_line(err)})"
    return None


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__
