"""The reproduction's plans: `Plan`, what a reproduction trains and probes, and `PLANS`.

A plan is data: the corpus size, the stage lengths, the variants, what is probed and how often, the
seeds. It lives apart from reproduction.py, which runs a plan (builds the corpus, trains, probes,
writes the report), so that the plans and the reasons behind their numbers read on their own;
`analysis.paper.reproduction` imports both names, and `Plan` and `PLANS` still import from there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from analysis.paper.variants import VARIANTS

__all__ = ["Plan", "PLANS"]


@dataclass(frozen=True)
class Plan:
    """What a reproduction trains and probes.

    images: corpus size; stage_a, stage_b: epochs before and after the switch (the paper: 20, 50);
    variants: which (A, B) to train; every: probe every N-th epoch (plus the first, the switch and the
    last); abx_sets: the corpus ABX sets probed; abx_options: passed to the ABX engine (subsampling);
    abx_files_per_speaker: probe only the first N files of each speaker of each ABX set (None: all),
    or ((set, N), ...) for a number per set (a set not named: all);
    cka_frames: frames CKA is computed on; cka_files_per_speaker: CKA compares the models on the
    first N files of each speaker of the `captions` set (None: the files its grids probe);
    similarity_pairs: base models compared by CKA at each
    probed epoch; overrides: trainer config overrides; seeds: how many seeds of every model (seed k
    trains with `seed=k`); bootstrap: resamples for the grids' per-cell intervals (0: none);
    read_speakers: speakers of the `read` ABX set of the corpus that `reproduce` builds (not of a
    `corpus=` given to it), the units of claim 3's speaker bootstrap (default 4, the corpus
    builder's; docs/reproduction.md says what more buy). test_images: the test split of the corpus
    that `reproduce` builds (None: the builder's sixth of `images`); recall_fold_images: test
    recall ranks each query within folds of about this many images (COCO's 1k protocol; the
    folds are the corpus's test images // this, at least 1; None: the whole split).
    """

    images: int
    stage_a: int
    stage_b: int
    variants: tuple[tuple[str, str], ...]
    every: int
    abx_sets: tuple[str, ...] = ("read", "captions")
    abx_options: tuple[tuple[str, Any], ...] = ()
    abx_files_per_speaker: int | tuple[tuple[str, int], ...] | None = None
    cka_frames: int = 4000
    # 5 files of each of the captions set's 6 speakers hold about 5000 frames, more than
    # cka_frames: extracting the grids' 12 per speaker at every probed checkpoint cost 2.4 times
    # as much for a seeded 4000 frames of them (CKA and drift were most of the probe step).
    cka_files_per_speaker: int | None = 5
    similarity_pairs: tuple[tuple[str, str], ...] = (
        ("VGS", "W2V2"),
        ("VGS+", "W2V2"),
        ("VGS+", "VGS"),
    )
    overrides: tuple[tuple[str, Any], ...] = ()
    seeds: int = 1
    bootstrap: int = 1000
    read_speakers: int = 4  # training.corpus.READ_SPEAKERS (not imported: torch at start-up)
    preset: str = "tiny"  # the model preset every run of the plan trains
    test_images: int | None = None
    recall_fold_images: int | None = None


PLANS = {
    # 28.3 to 31.0 minutes on a quiet 2-core machine (seeds 19 to 39, docs/reproduction.md;
    # less with 200 test images and 4 read speakers, `--test-images 200 --read-speakers 4`):
    # 42 epochs in all
    # (3 x (2 + 4) + 6 x 4) of the 4800 training captions (150 steps of 32), two models at a time
    # at one thread each, and the checkpoints of every second epoch probed on 12 files per speaker
    # of the `captions` set and 4 of each of the `read` set's 12 speakers (120 wavs). Claim 3 is
    # decided on the full read set (12 x 25 files): speakers are its interval's units, and with 4
    # its half-width was 2.2 points (seed 11). The corpus has 1200 images (960 train, 40
    # validation: the forgetting curves follow these) and 1000 test images ranked in 5 folds of 200 (COCO's 1k
    # protocol): recall@10 on the scale of 200 images, and paired intervals of about +-1.3 points
    # where 200 test images gave +-2.9. The `compact` preset learns words where `tiny` barely
    # starts to (docs/model.md).
    "default": Plan(
        images=1200,
        test_images=1000,
        recall_fold_images=200,
        stage_a=2,
        stage_b=4,
        variants=VARIANTS,
        every=2,
        abx_files_per_speaker=(("read", 4), ("captions", 12)),
        read_speakers=12,
        preset="compact",
    ),
    # A few minutes, for tests: fewer images, epochs and variants (still one per claim).
    "quick": Plan(
        images=24,
        test_images=8,  # two folds of 4: the default plan's folds, at the quick plan's size
        recall_fold_images=4,
        stage_a=1,
        stage_b=2,
        variants=(("W2V2", "VGS"), ("VGS", "W2V2"), ("VGS+", "W2V2")),
        every=100,
        abx_sets=("read",),
        abx_files_per_speaker=4,
        cka_frames=1000,
        similarity_pairs=(("VGS", "W2V2"),),
    ),
}
