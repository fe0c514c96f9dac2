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
from pathlib import Path

import pandas as pd

from training.fileio import write_text_atomic

__all__ = ["ItemFileError", "read_items", "write_items", "ITEM_COLUMNS"]

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


def read_items(path: str | os.PathLike) -> pd.DataFrame:
    """Read a ZeroSpeech item file.

    Returns a table with one row per item and the columns ``file, onset, offset, phone, prev, next,
    speaker`` (strings, and floats for the times), ``onset_text, offset_text`` (the times as written),
    ``line`` (1-based line number in the file, for error messages) and any extra header columns.
    Raises FileNotFoundError if the file is missing and ItemFileError (a ValueError) naming the file and
    line for a missing, repeated or reserved header column, a wrong number of fields, an unparsable
    time, onset >= offset, or text that is not UTF-8.
    """
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
    table = pd.DataFrame({name: rows[name] for name in order})
    table = table.astype({"onset": "float64", "offset": "float64", "line": "int64"})
    table.attrs["path"] = str(path)
    return table


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
