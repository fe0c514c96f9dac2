"""Synthetic speakers: espeak-ng language voices x variants, with pitch, range and rate per speaker.

Three disjoint pools. Train speakers and held-out (val/test) speakers use different variants; the
`read` ABX speakers use variants and language voices that no train speaker uses ("voices never used in
training"). A speaker's id is its espeak-ng voice name ("en-us+m3"), unique within the corpus.
"""

from __future__ import annotations

import numpy as np

from training.espeak import Voice, available_variants

__all__ = ["SPEAKER_POOLS", "make_speakers"]

# pool -> (language voices, variants). Language voices whose phones espeak-ng can emit with zero
# duration (en-gb-scotland drops final r's that way) are left out: alignments must tile the audio.
SPEAKER_POOLS = {
    "train": (("en-us", "en", "en-gb-x-rp"), ("m1", "m2", "m3", "m4", "m5", "f1", "f2", "f3")),
    "heldout": (("en-us", "en", "en-gb-x-rp"), ("m6", "m7", "f4")),
    "read": (("en-029", "en-us-nyc", "en-gb-x-gbcwmd"), ("m8", "f5")),
}
POOL_SIZES = {"train": 10, "heldout": 6, "read": 4}


def _voice_names(pool: str, count: int) -> list[str]:
    languages, variants = SPEAKER_POOLS[pool]
    missing = sorted(set(variants) - set(available_variants()))
    if missing:
        raise RuntimeError(f"espeak-ng data lacks voice variant(s) {', '.join(missing)}")
    pairs = [f"{lang}+{var}" for k in range(len(languages)) for i, var in enumerate(variants)
             for lang in [languages[(i + k) % len(languages)]]]  # fmt: skip
    if count > len(pairs):
        raise ValueError(f"pool {pool!r} has {len(pairs)} voices, {count} asked for")
    return pairs[:count]


def make_speakers(seed: int, pool: str, count: int | None = None) -> dict[str, Voice]:
    """`count` speakers of `pool` ("train", "heldout", "read"), with pitch and rate drawn from `seed`.

    Returns speaker id -> Voice, in a fixed order.
    """
    count = POOL_SIZES[pool] if count is None else count
    rng = np.random.default_rng([seed, 0x5BEA, list(SPEAKER_POOLS).index(pool)])
    speakers = {}
    for name in _voice_names(pool, count):
        pitch, span, rate = rng.integers([30, 30, 150], [71, 71, 186])
        speakers[name] = Voice(name, pitch=int(pitch), rate=int(rate), range=int(span))
    return speakers
