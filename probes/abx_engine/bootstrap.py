"""The label bootstrap's draws and its percentile intervals.

A resample draws the unit labels (speakers, by default) with replacement: ``_draws`` gives how many
times each label is drawn in each resample (seeded), the weights ``CollapsePlan.evaluate_many``
collapses the cells with; ``_interval`` reads the resamples' values as an ``Interval``. They are
apart from collapse.py, which averages the cells; ``Interval`` and both functions still import from
``probes.abx_engine.collapse`` (``result.AbxResult.bootstrap``, ``hierarchical``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Interval"]


@dataclass(frozen=True)
class Interval:
    """A bootstrap percentile interval around ``estimate`` (all errors in [0, 1])."""

    estimate: float
    low: float
    high: float
    confidence: float
    n_boot: int
    unit: str
    samples: np.ndarray = field(repr=False)

    def __float__(self) -> float:
        return float(self.estimate)


def _draws(n_labels: int, n_boot: int, seed: int) -> np.ndarray:
    """[n_boot, n_labels]: how many times each label is drawn in each resample (seeded)."""
    rng = np.random.default_rng(seed)
    draws = np.zeros((n_boot, n_labels))
    for k in range(n_boot):
        draws[k] = np.bincount(rng.integers(0, n_labels, n_labels), minlength=n_labels)
    return draws


def _interval(estimate: float, samples: np.ndarray, confidence: float, unit: str) -> Interval:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    finite = samples[np.isfinite(samples)]
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail]) if len(finite) else (np.nan, np.nan)
    return Interval(
        float(estimate), float(low), float(high), confidence, len(samples), unit, samples
    )
