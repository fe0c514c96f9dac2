"""A tiny ABX set of wavs (items.item + wavs/), built in a test: 4 files, 2 speakers, 2 phones.

Each file is a sine of a per-phone pitch under a per-speaker noise, so a small random model gives
ABX errors away from 0 and 1 and every condition has cells.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile

HEADER = "#file onset offset #phone prev-phone next-phone speaker\n"
RATE = 16000


def tiny_abx_set(folder: Path, *, files: int = 4, seconds: float = 1.0, seed: int = 0) -> Path:
    """folder/items.item and folder/wavs/f<i>.wav; returns the item file."""
    rng = np.random.default_rng(seed)
    wavs = folder / "wavs"
    wavs.mkdir(parents=True, exist_ok=True)
    lines = []
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    for f in range(files):
        pitch = np.where((t * 5).astype(int) % 2 == 0, 220.0, 330.0)
        wave = 0.3 * np.sin(2 * np.pi * pitch * t) + 0.05 * (f % 2 + 1) * rng.standard_normal(n)
        # An offset and a gain per file: per-utterance normalisation changes what the model sees.
        wave = (2.0 + f) * wave + 0.1 * f
        soundfile.write(wavs / f"f{f}.wav", wave.astype(np.float32) / 8, RATE, subtype="FLOAT")
        for k in range(int(seconds * 5) - 1):
            onset = 0.2 * k + 0.03
            phone = "ab"[k % 2]
            lines.append(f"f{f} {onset:.2f} {onset + 0.14:.2f} {phone} x y s{f % 2}\n")
    (folder / "items.item").write_text(HEADER + "".join(lines))
    return folder / "items.item"
