"""Synthetic speakers: espeak-ng language voices x variants, with pitch, range and rate per speaker.

Three disjoint pools. Train speakers and held-out (val/test) speakers use different variants; the
`read` ABX speakers use variants and language voices that no train speaker uses ("voices never used in
training"). A speaker's id is its espeak-ng voice name ("en-us+m3"), unique within the corpus.

The `read` pool can grow past its six (language, variant) pairs (`build_corpus(read_speakers=N)`):
further pairs come after them (`POOL_EXTENSIONS`), so the first speakers, their pitch/rate draws and
their sentences never change with N. Past every pair, pairs are reused in the same order, each with
its own pitch/rate draw and the id "<voice>~<round>" ("en-029+m8~2").
"""

from __future__ import annotations

import numpy as np

from training.corpus.espeak import Voice, available_variants

__all__ = ["POOL_EXTENSIONS", "SPEAKER_POOLS", "make_speakers", "pool_voices"]

# pool -> (language voices, variants). Language voices whose phones espeak-ng can emit with zero
# duration (en-gb-scotland drops final r's that way) are left out: alignments must tile the audio.
SPEAKER_POOLS = {
    "train": (("en-us", "en", "en-gb-x-rp"), ("m1", "m2", "m3", "m4", "m5", "f1", "f2", "f3")),
    "heldout": (("en-us", "en", "en-gb-x-rp"), ("m6", "m7", "f4")),
    "read": (("en-029", "en-us-nyc", "en-gb-x-gbcwmd"), ("m8", "f5")),
}
POOL_SIZES = {"train": 10, "heldout": 6, "read": 4}

# pool -> (language voices, variants) whose pairs follow the pool's own. For `read`: the read
# languages plus en-gb-x-gbclan (no train or held-out speaker uses any of them) with 16 named
# variants of espeak-ng 1.52 that no other pool uses, men and women alternating; left out are the
# variants that whisper, croak, echo or sound robotic. Every pair's phones tile its read sentences
# (tests/test_read_speakers.py).
POOL_EXTENSIONS = {
    "read": (
        ("en-029", "en-us-nyc", "en-gb-x-gbcwmd", "en-gb-x-gbclan"),
        ("Andy", "Andrea", "Denis", "Annie", "Gene", "aunty", "Michael", "belinda",
         "antonio", "linda", "paul", "steph", "robert", "anika", "travis", "grandma"),
    ),
}  # fmt: skip


def _pairs(languages: tuple[str, ...], variants: tuple[str, ...]) -> list[str]:
    """Every language+variant pair, rotated so that consecutive voices differ in both."""
    return [f"{languages[(i + k) % len(languages)]}+{var}"
            for k in range(len(languages)) for i, var in enumerate(variants)]  # fmt: skip


def pool_voices(pool: str) -> list[str]:
    """The distinct espeak-ng voices ("language+variant") of `pool`, in the speakers' order."""
    groups = [SPEAKER_POOLS[pool], *([POOL_EXTENSIONS[pool]] if pool in POOL_EXTENSIONS else [])]
    return [pair for languages, variants in groups for pair in _pairs(languages, variants)]


def _speaker_voices(pool: str, count: int) -> list[tuple[str, str]]:
    """(speaker id, espeak-ng voice) of the first `count` speakers of `pool`."""
    voices = pool_voices(pool)
    if count > len(voices) and pool not in POOL_EXTENSIONS:
        raise ValueError(f"pool {pool!r} has {len(voices)} voices, {count} asked for")
    # Past the last voice, reuse them in order: another speaker by its own pitch/rate draw only.
    rounds = [(voices[n % len(voices)], n // len(voices) + 1) for n in range(count)]
    chosen = [(voice if k == 1 else f"{voice}~{k}", voice) for voice, k in rounds]
    # espeak-ng falls back to the plain language voice for a variant it lacks: refuse instead.
    missing = sorted({voice.split("+")[1] for _, voice in chosen} - set(available_variants()))
    if missing:
        raise RuntimeError(f"espeak-ng data lacks voice variant(s) {', '.join(missing)}")
    return chosen


def make_speakers(seed: int, pool: str, count: int | None = None) -> dict[str, Voice]:
    """`count` speakers of `pool` ("train", "heldout", "read"), with pitch and rate drawn from `seed`.

    Returns speaker id -> Voice, in a fixed order. The first k speakers (ids, voices, draws) are the
    same whatever `count` >= k.
    """
    count = POOL_SIZES[pool] if count is None else count
    if count < 1:
        raise ValueError(f"pool {pool!r}: at least 1 speaker, {count} asked for")
    rng = np.random.default_rng([seed, 0x5BEA, list(SPEAKER_POOLS).index(pool)])
    speakers = {}
    for speaker, voice in _speaker_voices(pool, count):
        pitch, span, rate = rng.integers([30, 30, 150], [71, 71, 186])
        speakers[speaker] = Voice(voice, pitch=int(pitch), rate=int(rate), range=int(span))
    return speakers
