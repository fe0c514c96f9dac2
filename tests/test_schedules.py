"""Schedules: the --schedule / --stage-epochs language, the paper's named variants, stage lookup."""

from __future__ import annotations

import numpy as np
import pytest

from training.batches import epoch_batches, warmup_linear
from training.schedules import PAPER_SCHEDULES, ScheduleError, Stage, parse_schedule, stage_of


def test_stage_names_map_to_the_papers_loss_weights():
    stages = parse_schedule("w2v2,vgs,vgs+,alpha=0.25", "1,2,3,4")
    assert [(s.name, s.alpha, s.epochs) for s in stages] == [
        ("w2v2", 0.0, 1),
        ("vgs", 1.0, 2),
        ("vgs+", 0.5, 3),
        ("alpha=0.25", 0.25, 4),
    ]
    # loss = alpha * loss_av + (1 - alpha) * loss_aud
    assert stages[0].weights == (0.0, 1.0) and stages[1].weights == (1.0, 0.0)


def test_the_papers_nine_variants_are_named():
    assert len(PAPER_SCHEDULES) == 9
    base = parse_schedule("vgs")
    assert base == [Stage("vgs", 1.0, 70)]
    scheduled = parse_schedule("w2v2-then-vgs")  # the paper's (W2V2,VGS): 20 epochs, then 50
    assert scheduled == [Stage("w2v2", 0.0, 20), Stage("vgs", 1.0, 50)]
    # Explicit epochs win over the preset's, so the same variants run at a small scale.
    assert [s.epochs for s in parse_schedule("vgs-then-w2v2", "2,3")] == [2, 3]


def test_default_epochs_apply_only_when_they_fit():
    assert parse_schedule("vgs+", None, (15,)) == [Stage("vgs+", 0.5, 15)]
    with pytest.raises(ScheduleError, match="give their epochs"):
        parse_schedule("vgs,w2v2", None, (15,))


@pytest.mark.parametrize(
    "schedule, epochs, message",
    [
        ("", None, "empty schedule"),
        ("vgs,,w2v2", "1,2", "empty stage"),
        ("vgs++", "1", "unknown stage 'vgs\\+\\+'"),
        ("alpha=1.5", "1", "in \\[0, 1\\]"),
        ("alpha=x", "1", "in \\[0, 1\\]"),
        ("vgs,w2v2", "20", "2 stage\\(s\\) but 1 epoch count"),
        ("vgs", "0", "not a positive integer"),
        ("vgs", "2.5", "'2.5' is not an integer"),
        ("vgs", "-3", "not a positive integer"),
    ],
)
def test_bad_schedules_are_rejected_naming_the_entry(schedule, epochs, message):
    with pytest.raises(ScheduleError, match=message):
        parse_schedule(schedule, epochs)


def test_stage_of_counts_epochs_across_stages():
    stages = parse_schedule("vgs,w2v2", "2,3")
    assert [stage_of(stages, e) for e in range(1, 6)] == [(0, 1), (0, 2), (1, 1), (1, 2), (1, 3)]
    with pytest.raises(ValueError, match="past the schedule"):
        stage_of(stages, 6)


def test_learning_rate_warms_up_then_decays_to_zero():
    factor = warmup_linear(total_steps=100, warmup_fraction=0.1)
    values = [factor(s) for s in range(101)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert all(a <= b for a, b in zip(values[:10], values[1:10], strict=False))
    assert all(a >= b for a, b in zip(values[10:], values[11:], strict=False))
    assert values[100] == 0.0


def _padding(batches: list[list[int]], lengths: np.ndarray) -> float:
    """Fraction of a padded batch tensor that is padding."""
    return 1 - sum(lengths[b].sum() for b in batches) / sum(
        lengths[b].max() * len(b) for b in batches
    )


@pytest.mark.parametrize("bucket_batches", [0, 1, 4, 16])
def test_bucketed_batches_cover_the_same_captions_and_are_reproducible(bucket_batches):
    lengths = np.random.default_rng(0).uniform(1.0, 4.0, size=203)
    batches = epoch_batches(203, 16, 0, 3, lengths.tolist(), bucket_batches)
    assert batches == epoch_batches(203, 16, 0, 3, lengths.tolist(), bucket_batches)
    assert [len(b) for b in batches] == [16] * (203 // 16)  # the partial batch dropped
    flat = [i for b in batches for i in b]
    assert len(set(flat)) == len(flat)
    # Bucketing reorders the epoch's permutation; it drops the same captions as random batches.
    assert set(flat) == {i for b in epoch_batches(203, 16, 0, 3) for i in b}
    assert batches != epoch_batches(203, 16, 0, 4, lengths.tolist(), bucket_batches)


def test_bucketing_cuts_the_padding_of_random_batches():
    lengths = np.random.default_rng(1).uniform(1.9, 3.9, size=1200)
    random = _padding(epoch_batches(1200, 32, 0, 1), lengths)
    bucketed = _padding(epoch_batches(1200, 32, 0, 1, lengths.tolist(), 16), lengths)
    assert random > 0.15 and bucketed < random / 4
    # Which captions meet is still random: a bucket spans 16 batches of the permutation.
    assert epoch_batches(1200, 32, 0, 1, lengths.tolist(), 16) != epoch_batches(
        1200, 32, 1, 1, lengths.tolist(), 16
    )
