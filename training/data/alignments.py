"""Per-utterance phone alignments: a small tab-separated file per utterance.

    onset<TAB>offset<TAB>phone
    0.0000000<TAB>0.0841250<TAB>ɐ
    ...

Times are seconds written as exact decimals of a sample index at 16 kHz (7 decimals: 1/16000 s =
0.0000625 s, so nothing is rounded). The phones tile the utterance: the first onset is 0, each offset
is the next onset, the last offset is the wav's duration. Pauses are "SIL".
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

from training.fileio import write_text_atomic

__all__ = ["AlignmentError", "read_alignment", "write_alignment", "seconds_text"]

HEADER = "onset\toffset\tphone"


class AlignmentError(ValueError):
    """A malformed alignment file; the message names the file and the line (1-based)."""


def seconds_text(sample: int, sample_rate: int = 16000) -> str:
    """`sample / sample_rate` seconds as a decimal string with 7 decimals (exact at 16 kHz)."""
    return f"{Decimal(sample) / Decimal(sample_rate):.7f}"


def write_alignment(
    path: str | os.PathLike, bounds: list[int], phones: list[str], sample_rate: int = 16000
) -> Path:
    """Write phones[i] spanning samples bounds[i] .. bounds[i + 1] (len(bounds) == len(phones) + 1)."""
    if len(bounds) != len(phones) + 1:
        raise ValueError(
            f"{path}: {len(phones)} phones need {len(phones) + 1} bounds, got {len(bounds)}"
        )
    lines = [HEADER]
    for start, end, phone in zip(bounds[:-1], bounds[1:], phones, strict=True):
        lines.append(
            f"{seconds_text(start, sample_rate)}\t{seconds_text(end, sample_rate)}\t{phone}"
        )
    return write_text_atomic(path, "\n".join(lines) + "\n")


def read_alignment(path: str | os.PathLike) -> list[tuple[float, float, str]]:
    """Read an alignment file: [(onset, offset, phone)] in seconds, checked to be contiguous.

    Raises FileNotFoundError for a missing file and AlignmentError naming the file and line for a bad
    header, a wrong number of fields, a time that is not a number, onset >= offset or a gap.
    """
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or lines[0] != HEADER:
        raise AlignmentError(f"{path}:1: expected the header {HEADER!r}")
    rows: list[tuple[float, float, str]] = []
    prev_offset_text = ""
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split("\t")
        if len(fields) != 3:
            raise AlignmentError(
                f"{path}:{number}: expected 3 tab-separated fields, got {len(fields)}"
            )
        try:
            onset, offset = float(fields[0]), float(fields[1])
        except ValueError:
            raise AlignmentError(f"{path}:{number}: times must be numbers: {line!r}") from None
        if onset >= offset:
            raise AlignmentError(f"{path}:{number}: onset {onset} is not before offset {offset}")
        if rows and fields[0] != prev_offset_text:
            raise AlignmentError(
                f"{path}:{number}: onset {fields[0]} does not continue {prev_offset_text}"
            )
        if not rows and onset != 0.0:
            raise AlignmentError(f"{path}:{number}: the first phone must start at 0, not {onset}")
        rows.append((onset, offset, fields[2]))
        prev_offset_text = fields[1]
    if not rows:
        raise AlignmentError(f"{path}: no phones")
    return rows
