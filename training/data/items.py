"""ZeroSpeech item files: one line per phone token, read into and written from a pandas table.

An item file starts with the header ``#file onset offset #phone prev-phone next-phone speaker`` and has
one whitespace-separated line per item: the stem of the feature (or wav) file, onset and offset in
seconds, the phone, its left and right neighbours, and the speaker. Columns after the seventh are kept
under their header names (ABXpy's general form lets ``on``/``by``/``across`` name any column).

The onset and offset are kept twice: as floats (``onset``, ``offset``) and as the text of the file
(``onset_text``, ``offset_text``), because the default ABX slicing rounds in exact decimal arithmetic
and ``0.015`` as a double is not 0.015.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from training.fileio import write_text_atomic

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "ItemFileError",
    "ItemColumns",
    "read_items",
    "read_item_columns",
    "write_items",
    "ITEM_COLUMNS",
]

# Columns the reader adds to every table: an extra header column may not take their names.
RESERVED_COLUMNS = ("onset_text", "offset_text", "line")
# Canonical column names, in file order, and the header spellings they come from.
ITEM_COLUMNS = ("file", "onset", "offset", "phone", "prev", "next", "speaker")
HEADER_NAMES = ("#file", "onset", "offset", "#phone", "prev-phone", "next-phone", "speaker")
_ALIASES = {
    "#file": "file",
    "#phone": "phone",
    "prev-phone": "prev",
    "next-phone": "next",
    "#speaker": "speaker",
    "talker": "speaker",
}


class ItemFileError(ValueError):
    """A malformed item file; the message names the file and the line (1-based)."""

    def __init__(self, path: str | os.PathLike, line: int | None, message: str) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}")
        self.path = str(path)
        self.line = line


def _column_name(header_field: str) -> str:
    return _ALIASES.get(header_field, header_field.lstrip("#"))


def _parse_time(path: Path, line: int, name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ItemFileError(path, line, f"{name} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ItemFileError(path, line, f"{name} {text!r} is not a finite number")
    return value


class ItemColumns:
    """An item table as plain numpy columns: what the ABX engine reads, without importing pandas.

    ``columns``: name -> [n] array (strings as numpy unicode, times float64, ``line`` int64), in
    ``read_items``'s column order; ``path``: the item file, for error messages. ``table["phone"]`` is
    a column, ``len(table)`` the number of items, ``table.to_frame()`` the pandas table of
    ``read_items``. (pandas costs about a quarter of a second to import, a third of a small
    `sslvgs abx` process: the command line reads items this way.)
    """

    def __init__(self, columns: dict[str, np.ndarray], path: str | None = None) -> None:
        self.columns = {name: np.asarray(values) for name, values in columns.items()}
        lengths = {len(values) for values in self.columns.values()}
        if len(lengths) > 1:
            raise ValueError(
                f"{path or 'item table'}: columns of different lengths {sorted(lengths)}"
            )
        self.path = path

    @classmethod
    def from_frame(cls, table: pd.DataFrame) -> ItemColumns:
        """The columns of a pandas table (``read_items``'s, or one a user built)."""
        columns = {str(name): table[name].to_numpy() for name in table.columns}
        return cls(columns, table.attrs.get("path"))

    def to_frame(self) -> pd.DataFrame:
        """The pandas table ``read_items`` returns (strings as Python ``str`` objects)."""
        import pandas as pd

        table = pd.DataFrame(
            {n: v.astype(object) if v.dtype.kind == "U" else v for n, v in self.columns.items()}
        )
        if self.path is not None:
            table.attrs["path"] = self.path
        return table

    def take(self, rows: np.ndarray) -> ItemColumns:
        """The items at positions ``rows`` ([k] ints), in that order."""
        return ItemColumns({n: v[rows] for n, v in self.columns.items()}, self.path)

    def assign(self, **columns: np.ndarray) -> ItemColumns:
        """A copy with ``columns`` added or replaced."""
        return ItemColumns(self.columns | columns, self.path)

    @property
    def names(self) -> list[str]:
        return list(self.columns)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    def __contains__(self, name: object) -> bool:
        return name in self.columns

    def __iter__(self) -> Iterator[str]:
        return iter(self.columns)

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0


def read_items(path: str | os.PathLike) -> pd.DataFrame:
    """Read a ZeroSpeech item file.

    Returns a table with one row per item and the columns ``file, onset, offset, phone, prev, next,
    speaker`` (strings, and floats for the times), ``onset_text, offset_text`` (the times as written),
    ``line`` (1-based line number in the file, for error messages) and any extra header columns.
    Raises FileNotFoundError if the file is missing and ItemFileError (a ValueError) naming the file and
    line for a missing, repeated or reserved header column, a wrong number of fields, an unparsable
    time, onset >= offset, or text that is not UTF-8.
    """
    return read_item_columns(path).to_frame()


def read_item_columns(path: str | os.PathLike) -> ItemColumns:
    """``read_items`` as numpy columns (``ItemColumns``), without pandas; the same checks and errors."""
    path = Path(path)
    raw = path.read_bytes()
    try:
        lines = raw.decode("utf-8").splitlines()
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise ItemFileError(
            path, line, f"not UTF-8 text (byte {raw[error.start]:#04x} at offset {error.start})"
        ) from None
    if not lines or not lines[0].strip():
        raise ItemFileError(path, 1, "empty file: expected the header " + " ".join(HEADER_NAMES))
    names = [_column_name(field) for field in lines[0].split()]
    missing = [c for c in ITEM_COLUMNS if c not in names]
    if missing:
        raise ItemFileError(
            path,
            1,
            f"header lacks column(s) {', '.join(missing)}; expected {' '.join(HEADER_NAMES)}",
        )
    if len(set(names)) != len(names):
        raise ItemFileError(path, 1, f"header repeats a column: {lines[0]!r}")
    reserved = [n for n in names if n in RESERVED_COLUMNS]
    if reserved:
        raise ItemFileError(
            path, 1, f"header column {reserved[0]!r} is a name the reader uses itself "
            f"({', '.join(RESERVED_COLUMNS)}); rename it",
        )  # fmt: skip
    at = {name: i for i, name in enumerate(names)}
    rows: dict[str, list] = {name: [] for name in names}
    rows["onset_text"], rows["offset_text"], rows["line"] = [], [], []
    for number, text in enumerate(lines[1:], start=2):
        fields = text.split()
        if not fields:
            continue  # blank lines (a trailing newline, say) carry no item
        if len(fields) != len(names):
            raise ItemFileError(
                path, number, f"expected {len(names)} fields ({' '.join(names)}), got {len(fields)}"
            )
        onset = _parse_time(path, number, "onset", fields[at["onset"]])
        offset = _parse_time(path, number, "offset", fields[at["offset"]])
        if onset >= offset:
            raise ItemFileError(path, number, f"onset {onset} is not before offset {offset}")
        for name, field in zip(names, fields, strict=True):
            rows[name].append(field)
        rows["onset"][-1], rows["offset"][-1] = onset, offset
        rows["onset_text"].append(fields[at["onset"]])
        rows["offset_text"].append(fields[at["offset"]])
        rows["line"].append(number)
    order = list(ITEM_COLUMNS) + ["onset_text", "offset_text", "line"]
    order += [n for n in names if n not in order]
    numeric = {"onset": np.float64, "offset": np.float64, "line": np.int64}
    columns = {
        name: np.array(rows[name], numeric.get(name, str)) if rows[name] else _empty(name, numeric)
        for name in order
    }
    return ItemColumns(columns, str(path))


def _empty(name: str, numeric: dict) -> np.ndarray:
    return np.zeros(0, numeric[name]) if name in numeric else np.zeros(0, "<U1")


def _time_text(table: pd.DataFrame, name: str) -> list[str]:
    # Keep the exact text where it exists and still matches the float, so a read/write round trip
    # is byte-for-byte and the decimal slicing of the written file equals that of the original.
    values = table[name].astype("float64").tolist()
    texts = table[f"{name}_text"].tolist() if f"{name}_text" in table else [None] * len(values)
    return [
        t if t is not None and float(t) == v else repr(v)
        for t, v in zip(texts, values, strict=True)
    ]


def write_items(path: str | os.PathLike, table: pd.DataFrame) -> Path:
    """Write ``table`` (columns as returned by ``read_items``) as a ZeroSpeech item file, atomically.

    Extra columns other than ``onset_text``, ``offset_text`` and ``line`` are written after the seven
    standard ones, under their own names.
    """
    path = Path(path)
    missing = [c for c in ITEM_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"cannot write {path}: table lacks column(s) {', '.join(missing)}")
    extra = [
        c
        for c in table.columns
        if c not in ITEM_COLUMNS and c not in ("onset_text", "offset_text", "line")
    ]
    for name in ("file", "phone", "prev", "next", "speaker", *extra):
        bad = table[name].astype(str).str.contains(r"\s|^$", regex=True)
        if bad.any():
            raise ValueError(
                f"cannot write {path}: column {name} entry {int(bad.to_numpy().argmax())} is empty or has whitespace"
            )
    columns = {
        "file": table["file"].astype(str).tolist(),
        "onset": _time_text(table, "onset"),
        "offset": _time_text(table, "offset"),
    }
    for name in ("phone", "prev", "next", "speaker", *extra):
        columns[name] = table[name].astype(str).tolist()
    header = " ".join([*HEADER_NAMES, *extra])
    body = [" ".join(fields) for fields in zip(*columns.values(), strict=True)]
    text = "\n".join([header, *body]) + "\n"
    return write_text_atomic(path, text)
