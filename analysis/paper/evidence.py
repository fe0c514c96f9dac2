"""Paired comparisons of two models on the same test material, and the verdict they support.

A claim says "model a is better than model b". Both models are measured on the same queries (test
images and their captions) or the same ABX cells, so the comparison is paired: every bootstrap draw
resamples the units (images; or speakers and the files within each drawn speaker) once and weights
both models' results with that same draw.
The difference a - b gets a percentile interval, and the verdict reads it:

- **holds**: the interval lies entirely on the claim's side of 0;
- **contradicted**: it lies entirely on the other side;
- **undecided at this size**: it covers 0.

The half-width of the interval is the smallest difference this test set could have told from 0 (a
true difference of that size is detected about half the time; of 1.4 times it, about 80%).

Several seeds: the same draws (one seed of the resampler) weight every seed's models, so averaging the
draws over seeds gives the test-set interval of the seed-averaged difference; the between-seed spread
of the differences is then added (normal approximation), since a reader should not take training
noise for an effect either.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "Ranks",
    "Comparison",
    "VERDICTS",
    "verdict",
    "paired_recall",
    "paired_abx",
    "combine_conditions",
    "combine_seeds",
]

VERDICTS = ("holds", "contradicted", "undecided at this size")
# What a two-level ABX bootstrap resamples, as a comparison's text reads it ("over 4 speakers and ...").
SPEAKERS_AND_FILES = "speakers and the files within them"
RECALL_KS = (1, 10)  # the paper's Table I: R@1 and R@10, both directions


@dataclass(frozen=True)
class Ranks:
    """A model's retrieval ranks on a split (`training.retrieval.retrieval_ranks`).

    speech: [C] rank of each caption's image; image: [I] rank of each image's best caption (-1: an
    image without captions); owner: [C] the image of each caption.
    """

    speech: np.ndarray
    image: np.ndarray
    owner: np.ndarray

    def per_image_hits(self, ks: Sequence[int] = RECALL_KS) -> tuple[np.ndarray, np.ndarray]:
        """(caption hits summed per image [I, K], image hits [I, K]): what an image brings to a
        resampled recall, with its captions."""
        ks = np.asarray(ks)
        caption_hits = np.zeros((len(self.image), len(ks)))
        np.add.at(caption_hits, self.owner, self.speech[:, None] < ks[None, :])
        image_hits = (self.image[:, None] < ks[None, :]) & (self.image[:, None] >= 0)
        return caption_hits, image_hits.astype(np.float64)

    def to_json(self) -> dict[str, list[int]]:
        return {k: getattr(self, k).astype(int).tolist() for k in ("speech", "image", "owner")}

    @classmethod
    def from_json(cls, data: dict) -> Ranks:
        return cls(*(np.asarray(data[k], dtype=np.int64) for k in ("speech", "image", "owner")))

    @classmethod
    def of(cls, result: Any, name: str = "a") -> Ranks:
        """Ranks as they are, or those a `probes.recall` result carries in its attrs."""
        if isinstance(result, Ranks):
            return result
        attrs = getattr(result, "attrs", None) or {}
        names = ("speech_ranks", "image_ranks", "caption_image")
        if all(k in attrs for k in names):
            return cls(*(np.asarray(attrs[k], dtype=np.int64) for k in names))
        raise TypeError(
            f"{name}: a {type(result).__name__} without per-query ranks; pass what probes.recall "
            "returns (it carries them) or analysis.Ranks"
        )


@dataclass(frozen=True)
class Comparison:
    """a - b on the same material, with its paired interval.

    measure: what is compared; higher_is_better: the direction of `measure` (the claim is that a is
    better); unit/units: what was resampled and how many there were.
    """

    measure: str
    a: str
    b: str
    value_a: float
    value_b: float
    difference: float
    low: float
    high: float
    higher_is_better: bool
    unit: str
    units: int
    confidence: float = 0.95
    n_boot: int = 1000
    samples: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False, compare=False)
    note: str = ""

    @property
    def verdict(self) -> str:
        return verdict(self.low, self.high, higher_is_better=self.higher_is_better)

    @property
    def half_width(self) -> float:
        """Half the interval's width: the smallest difference this run could tell from 0."""
        return (self.high - self.low) / 2


def verdict(low: float, high: float, *, higher_is_better: bool) -> str:
    """The verdict on "a is better than b" from the interval [low, high] of a - b (see module)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return VERDICTS[2]
    better_side, worse_side = (low > 0, high < 0) if higher_is_better else (high < 0, low > 0)
    return VERDICTS[0] if better_side else VERDICTS[1] if worse_side else VERDICTS[2]


def _percentiles(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    finite = samples[np.isfinite(samples)]
    if not len(finite):
        return math.nan, math.nan
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


def image_weights(queries: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """[n_boot, I] multiplicities of the images that ask a query, drawn with replacement (images
    without captions weigh 0). A fixed seed gives the same draws for every model: the pairing."""
    rng = np.random.default_rng(seed)
    candidates = np.flatnonzero(queries)
    weights = np.zeros((n_boot, len(queries)))
    for draw in range(n_boot):
        weights[draw] = np.bincount(rng.choice(candidates, len(candidates)), minlength=len(queries))
    return weights


def _mean_recall(ranks: Ranks, weights: np.ndarray, ks: Sequence[int]) -> np.ndarray:
    """The mean of the recalls (both directions, every k) under each row of image `weights`."""
    caption_hits, image_hits = ranks.per_image_hits(ks)
    n_captions = np.bincount(ranks.owner, minlength=len(ranks.image)).astype(np.float64)
    speech = (weights @ caption_hits) / (weights @ n_captions)[:, None]  # [W, K]
    image = (weights @ image_hits) / weights.sum(1)[:, None]
    return (speech.sum(1) + image.sum(1)) / (2 * len(ks))


def paired_recall(
    a: Any,
    b: Any,
    *,
    names: tuple[str, str] = ("a", "b"),
    ks: Sequence[int] = RECALL_KS,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Comparison:
    """Mean recall (R@k for each k in `ks`, both directions) of a minus b, with a paired bootstrap
    over the test images (each draw resamples images with their captions, for both models).

    a, b: `probes.recall` results (they carry every query's rank) or `Ranks`; both on the same
    split (the same captions of the same images).
    """
    a, b = Ranks.of(a, names[0]), Ranks.of(b, names[1])
    if not (np.array_equal(a.owner, b.owner) and len(a.image) == len(b.image)):
        raise ValueError(f"{names[0]} and {names[1]} were ranked on different splits")
    queries = a.image >= 0
    point = np.ones((1, len(a.image))) * queries
    value_a, value_b = (float(_mean_recall(r, point, ks)[0]) for r in (a, b))
    weights = image_weights(queries, n_boot, seed)
    samples = _mean_recall(a, weights, ks) - _mean_recall(b, weights, ks)
    low, high = _percentiles(samples, confidence)
    return Comparison(
        measure=f"mean test recall (R@{', R@'.join(map(str, ks))}, both directions)",
        a=names[0], b=names[1], value_a=value_a, value_b=value_b,
        difference=value_a - value_b, low=low, high=high, higher_is_better=True,
        unit="images", units=int(queries.sum()), confidence=confidence, n_boot=n_boot,
        samples=samples,
    )  # fmt: skip


def paired_abx(
    result_a,
    result_b,
    *,
    names: tuple[str, str] = ("a", "b"),
    measure: str = "ABX error",
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Comparison:
    """ABX error of a minus b on the same cells (two `AbxResult`s of one condition and item file),
    with the engine's paired bootstrap (lower is better): over the speakers and the files within
    each drawn speaker when both results carry their per-file counts (the engine's and a grid's
    do), else over the speakers alone (`unit` says which)."""
    from probes.abx_engine import paired_difference
    from probes.abx_engine.result import CollapsePlan

    files = result_a.files is not None and result_b.files is not None
    paired = paired_difference(result_a, result_b, n_boot=n_boot, confidence=confidence, seed=seed,
                               files=files)  # fmt: skip
    plan = CollapsePlan(result_a.cells, result_a.labels, result_a.condition.levels, "speaker")
    interval = paired.interval
    return Comparison(
        measure=measure, a=names[0], b=names[1], value_a=float(result_a),
        value_b=float(result_b), difference=interval.estimate, low=interval.low,
        high=interval.high, higher_is_better=False,
        unit=SPEAKERS_AND_FILES if files else "speakers", units=len(plan.unit_labels),
        confidence=confidence, n_boot=n_boot, samples=np.asarray(interval.samples),
    )  # fmt: skip


def combine_conditions(parts: Sequence[Comparison], measure: str) -> Comparison:
    """The mean of several comparisons of the same two models (e.g. within- and across-speaker ABX).

    Their bootstrap draws are averaged draw by draw, which is a paired bootstrap of the mean when
    they resampled the same units with the same seed (the same speakers, in the same order: the
    engine draws them from one seeded generator). Otherwise the parts are treated as independent.
    """
    first = parts[0]
    same = all(
        p.units == first.units and len(p.samples) == len(first.samples) and p.unit == first.unit
        for p in parts
    )
    difference = float(np.mean([p.difference for p in parts]))
    if same and len(first.samples):
        low, high = _percentiles(np.mean([p.samples for p in parts], axis=0), first.confidence)
        samples = np.mean([p.samples for p in parts], axis=0)
    else:  # independent parts: the variance of a mean of n is the sum of variances over n^2
        se = math.sqrt(sum((p.half_width / _z(p.confidence)) ** 2 for p in parts)) / len(parts)
        low, high = difference - _z(first.confidence) * se, difference + _z(first.confidence) * se
        samples = np.empty(0)
    return Comparison(
        measure=measure, a=first.a, b=first.b,
        value_a=float(np.mean([p.value_a for p in parts])),
        value_b=float(np.mean([p.value_b for p in parts])), difference=difference, low=low,
        high=high, higher_is_better=first.higher_is_better, unit=first.unit, units=first.units,
        confidence=first.confidence, n_boot=first.n_boot, samples=samples,
    )  # fmt: skip


def _z(confidence: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(0.5 + confidence / 2))


def combine_seeds(per_seed: Sequence[Comparison]) -> Comparison:
    """The seed-averaged difference of one comparison measured on several seeds' models.

    Its interval joins the test-set uncertainty (the per-seed draws averaged draw by draw: the same
    units were drawn for every seed) and the between-seed spread of the differences (its variance
    over the number of seeds), in a normal approximation. One seed: that seed's comparison.
    """
    if len(per_seed) == 1:
        return per_seed[0]
    first, k = per_seed[0], len(per_seed)
    differences = np.array([c.difference for c in per_seed])
    difference = float(differences.mean())
    if all(len(c.samples) == len(first.samples) and len(c.samples) for c in per_seed):
        # A draw can be NaN (an ABX resample without any cell); such draws are left out.
        averaged = np.mean([c.samples for c in per_seed], axis=0)
        test_se = float(np.std(averaged[np.isfinite(averaged)], ddof=1))
    else:
        test_se = math.sqrt(sum((c.half_width / _z(c.confidence)) ** 2 for c in per_seed)) / k
    seed_sd = float(differences.std(ddof=1))
    half = _z(first.confidence) * math.sqrt(test_se**2 + seed_sd**2 / k)
    return Comparison(
        measure=first.measure, a=first.a, b=first.b,
        value_a=float(np.mean([c.value_a for c in per_seed])),
        value_b=float(np.mean([c.value_b for c in per_seed])), difference=difference,
        low=difference - half, high=difference + half, higher_is_better=first.higher_is_better,
        unit=first.unit, units=first.units, confidence=first.confidence, n_boot=first.n_boot,
        # In points, as the report states every difference (values are fractions).
        note=f"mean of {k} seeds; between-seed SD of the difference {100 * seed_sd:.1f} points",
    )  # fmt: skip
