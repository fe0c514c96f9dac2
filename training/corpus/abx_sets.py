"""ABX item tables for the corpus's two ABX sets, from the per-utterance phone alignments.

One item per phone that is not silence: `#file` is the wav's stem, onset and offset are the phone's
bounds in seconds (exact decimals at 16 kHz), prev-phone and next-phone its neighbours in the
utterance ("SIL" for a pause or the utterance edge: silence is a context label, never a target), and
the speaker. A phone is kept only if it contains the centre of at least one 20 ms frame (50 Hz, the
models' frame rate), so every item selects at least one frame under the default slicing
(start = ceil(50 * onset - 1/2), end = floor(50 * offset - 1/2) + 1).
"""

from __future__ import annotations

import math
from decimal import Decimal
from pathlib import Path

import pandas as pd

from training.corpus.espeak import SILENCE
from training.data.alignments import read_alignment

__all__ = ["abx_items", "write_abx_items", "ITEM_FRAME_RATE"]

ITEM_FRAME_RATE = 50


def _has_frame(onset_text: str, offset_text: str, rate: int = ITEM_FRAME_RATE) -> bool:
    start = math.ceil(Decimal(rate) * Decimal(onset_text) - Decimal("0.5"))
    end = math.floor(Decimal(rate) * Decimal(offset_text) - Decimal("0.5")) + 1
    return end > start


def _alignment_texts(path: Path) -> list[tuple[str, str, str]]:
    read_alignment(path)  # validates
    lines = path.read_text(encoding="utf-8").splitlines()[1:]
    return [tuple(line.split("\t")) for line in lines]


def abx_items(root: Path, members: list) -> pd.DataFrame:
    """Item table (columns of training.data.read_items) for utterances `members` of the corpus at `root`.

    Each member needs .wav (path relative to root), .alignment, .speaker.
    """
    rows = []
    for utt in members:
        phones = _alignment_texts(root / utt.alignment)
        labels = [p for _, _, p in phones]
        for i, (onset, offset, phone) in enumerate(phones):
            if phone == SILENCE or not _has_frame(onset, offset):
                continue
            prev = labels[i - 1] if i > 0 else SILENCE
            following = labels[i + 1] if i + 1 < len(labels) else SILENCE
            rows.append((Path(utt.wav).stem, onset, offset, phone, prev, following, utt.speaker))
    table = pd.DataFrame(
        rows, columns=["file", "onset_text", "offset_text", "phone", "prev", "next", "speaker"]
    )
    table["onset"] = table["onset_text"].astype("float64")
    table["offset"] = table["offset_text"].astype("float64")
    return table[
        ["file", "onset", "offset", "phone", "prev", "next", "speaker", "onset_text", "offset_text"]
    ]


def write_abx_items(path: Path, table: pd.DataFrame) -> Path:
    """Write the item file with the ABX helper's writer (training.data.items)."""
    from training.data.items import write_items

    return write_items(path, table)
