"""Claims decided by paired intervals: two models measured on the same test material.

Identical or equally good models are "undecided at this size"; a planted difference "holds", and the
opposite one is "contradicted". Recall pairs the resampled test images, ABX the resampled speakers.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pandas as pd
import pytest

from analysis.paper.evidence import (
    Ranks,
    combine_conditions,
    combine_seeds,
    paired_abx,
    paired_recall,
    verdict,
)
from probes.abx_engine import AbxResult, zerospeech_condition

IMAGES, CAPTIONS = 60, 5


def planted_ranks(hit_rate: float, seed: int) -> Ranks:
    """Ranks of a model on 60 images x 5 captions: each query finds its answer first with
    probability `hit_rate`, else somewhere in ranks 10..59 (a miss at R@1 and R@10)."""
    rng = np.random.default_rng(seed)
    owner = np.repeat(np.arange(IMAGES), CAPTIONS)

    def ranks(n: int) -> np.ndarray:
        return np.where(rng.random(n) < hit_rate, 0, rng.integers(10, IMAGES, n))

    return Ranks(ranks(len(owner)), ranks(IMAGES), owner)


def test_verdict_reads_the_side_of_zero() -> None:
    assert verdict(0.01, 0.2, higher_is_better=True) == "holds"
    assert verdict(-0.2, -0.01, higher_is_better=True) == "contradicted"
    assert verdict(-0.1, 0.1, higher_is_better=True) == "undecided at this size"
    assert verdict(-0.2, -0.01, higher_is_better=False) == "holds"  # a's error is lower
    assert verdict(float("nan"), 0.1, higher_is_better=True) == "undecided at this size"


def test_identical_models_are_undecided() -> None:
    ranks = planted_ranks(0.5, seed=0)
    same = paired_recall(ranks, ranks, n_boot=200)
    assert same.difference == 0 and same.low == same.high == 0
    assert same.verdict == "undecided at this size"


def test_equally_good_models_are_undecided_and_say_what_they_could_detect() -> None:
    result = paired_recall(planted_ranks(0.5, 1), planted_ranks(0.5, 2), n_boot=500)
    assert result.low < 0 < result.high
    assert result.verdict == "undecided at this size"
    assert 0 < result.half_width < 0.2 and result.units == IMAGES and result.unit == "images"


def test_planted_difference_holds_and_its_opposite_is_contradicted() -> None:
    good, poor = planted_ranks(0.8, 3), planted_ranks(0.2, 4)
    better = paired_recall(good, poor, names=("good", "poor"), n_boot=500)
    assert better.verdict == "holds" and better.low > 0
    assert better.difference == pytest.approx(better.value_a - better.value_b)
    assert paired_recall(poor, good, n_boot=500).verdict == "contradicted"


def test_paired_recall_values_are_the_mean_of_the_recalls() -> None:
    ranks = planted_ranks(0.6, 5)
    speech = [(ranks.speech < k).mean() for k in (1, 10)]
    image = [(ranks.image < k).mean() for k in (1, 10)]
    result = paired_recall(ranks, planted_ranks(0.1, 6), n_boot=50)
    assert result.value_a == pytest.approx(np.mean(speech + image))


def shuffled_images(ranks: Ranks, seed: int) -> Ranks:
    """The same model's hits given to other images: the same recalls, the pairing broken."""
    order = np.random.default_rng(seed).permutation(IMAGES)
    speech = ranks.speech.reshape(IMAGES, CAPTIONS)[order].ravel()
    return Ranks(speech, ranks.image[order], ranks.owner)


def test_pairing_narrows_the_interval() -> None:
    """Two models that share most of their hits differ little per image: the paired interval is far
    narrower than the same comparison with the pairing broken."""
    a = planted_ranks(0.5, 7)
    flip = np.random.default_rng(8).random(len(a.speech)) < 0.1
    b = Ranks(np.where(flip, 20, a.speech), a.image, a.owner)
    paired = paired_recall(a, b, n_boot=500)
    unpaired = paired_recall(a, shuffled_images(b, 9), n_boot=500)
    assert unpaired.difference == pytest.approx(paired.difference)
    assert paired.half_width < 0.5 * unpaired.half_width


def abx_result(errors: np.ndarray) -> AbxResult:
    """Across-speaker cells over 12 speakers x 3 phone pairs, with the given per-cell errors."""
    speakers = [f"s{i}" for i in range(12)]
    rows = [
        (a, b, "c", s, x)
        for (a, b), s, x in itertools.product(
            [("a", "b"), ("b", "a"), ("a", "c")], speakers, speakers
        )
        if s != x
    ]
    cells = pd.DataFrame(rows, columns=["phone", "phone_b", "context", "speaker", "speaker_x"])
    cells = cells.assign(n_a=2, n_b=2, n_x=2, n_triplets=8)
    cells["error"] = errors[: len(cells)]
    cells["correct2"] = np.round((1 - cells["error"]) * 16).astype(np.int64)
    return AbxResult(cells, zerospeech_condition("across", "within"))


N_CELLS = 3 * 12 * 11


def test_abx_identical_models_undecided_planted_difference_holds() -> None:
    rng = np.random.default_rng(9)
    base = rng.uniform(0.1, 0.4, N_CELLS)
    same = paired_abx(abx_result(base), abx_result(base), n_boot=200)
    assert same.difference == 0 and same.verdict == "undecided at this size"
    noisy = paired_abx(
        abx_result(base), abx_result(base + rng.normal(0, 0.05, N_CELLS)), n_boot=300
    )
    assert noisy.verdict == "undecided at this size"  # zero-mean noise: no difference to find
    lower = abx_result(np.clip(base - 0.1, 0, 1))  # a planted 10-point lower error
    better = paired_abx(lower, abx_result(base), names=("VGS", "W2V2"), n_boot=300)
    assert better.verdict == "holds" and better.high < 0 and better.unit == "speakers"
    assert better.units == 12
    assert paired_abx(abx_result(base), lower, n_boot=300).verdict == "contradicted"


def test_conditions_combine_draw_by_draw() -> None:
    rng = np.random.default_rng(10)
    base = rng.uniform(0.1, 0.4, N_CELLS)
    within = paired_abx(abx_result(base - 0.05), abx_result(base), n_boot=300)
    across = paired_abx(abx_result(base - 0.15), abx_result(base), n_boot=300)
    mean = combine_conditions([within, across], "mean")
    assert mean.difference == pytest.approx((within.difference + across.difference) / 2)
    assert mean.verdict == "holds" and mean.low < mean.difference < mean.high


def test_seeds_add_their_spread() -> None:
    runs = [paired_recall(planted_ranks(0.6, s), planted_ranks(0.4, 100 + s), n_boot=300)
            for s in range(3)]  # fmt: skip
    combined = combine_seeds(runs)
    assert combined.difference == pytest.approx(np.mean([r.difference for r in runs]))
    assert "3 seeds" in combined.note
    # The spread is stated in points, as the report states the differences themselves.
    spread = 100 * np.std([r.difference for r in runs], ddof=1)
    assert f"between-seed SD of the difference {spread:.1f} points" in combined.note
    assert combine_seeds(runs[:1]) is runs[0]


def test_seeds_ignore_resamples_without_a_value() -> None:
    """An ABX resample can have no cell (NaN); the seed-averaged interval leaves such draws out."""
    rng = np.random.default_rng(11)
    base = rng.uniform(0.1, 0.4, N_CELLS)
    runs = []
    for seed in range(2):
        run = paired_abx(abx_result(base - 0.1), abx_result(base + 0.01 * seed), n_boot=200)
        samples = run.samples.copy()
        samples[:5] = np.nan
        runs.append(dataclasses.replace(run, samples=samples))
    combined = combine_seeds(runs)
    assert np.isfinite(combined.low) and np.isfinite(combined.high)
    assert combined.verdict == "holds"
