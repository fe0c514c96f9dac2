"""AbxResult: averaging order of each condition, collapsing at any level, bootstrap and paired intervals,
and the optional subsampling."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from abx_reference import reference_error
from hypothesis import given, settings
from hypothesis import strategies as st

from probes.abx_engine import AbxResult, paired_difference, score, zerospeech_condition


def cells_table(rows: list[tuple]) -> pd.DataFrame:
    """Hand-made across-speaker cells: (phone, phone_b, context, speaker, speaker_x, error)."""
    table = pd.DataFrame(
        rows, columns=["phone", "phone_b", "context", "speaker", "speaker_x", "error"]
    )
    n = len(table)
    counts = {"n_a": 1, "n_b": 1, "n_x": 1, "n_triplets": 1}
    table = table.assign(**counts, correct2=((1 - table["error"]) * 2).round().astype(np.int64))
    return table[
        ["phone", "phone_b", "context", "speaker", "speaker_x", *counts, "correct2", "error"]
    ].iloc[:n]


ACROSS_CELLS = cells_table(
    [
        ("a", "b", "c1", "s1", "s2", 0.0),
        ("a", "b", "c2", "s1", "s2", 1.0),
        ("a", "b", "c2", "s1", "s3", 1.0),
        ("a", "b", "c1", "s2", "s1", 0.5),
        ("b", "a", "c1", "s1", "s2", 0.0),
    ]
)


def test_across_within_averages_context_and_x_speaker_jointly_then_speakers_then_pairs():
    result = AbxResult(ACROSS_CELLS, zerospeech_condition("across", "within"))
    # (a, b): s1 -> mean(0, 1, 1) = 2/3, s2 -> 0.5; mean 7/12. (b, a): 0. Then the mean of the pairs.
    assert result.collapse() == pytest.approx((7 / 12 + 0) / 2)
    assert float(result) == result.error == result.collapse()


def test_across_any_averages_x_speakers_then_speakers_then_pairs():
    rows = [
        ("a", "b", "-", "s1", "s2", 0.0),
        ("a", "b", "-", "s1", "s3", 1.0),
        ("a", "b", "-", "s1", "s4", 1.0),
    ]
    rows += [("a", "b", "-", "s2", "s1", 0.5), ("b", "a", "-", "s1", "s2", 0.0)]
    cells = cells_table(rows).drop(columns="context")
    result = AbxResult(cells, zerospeech_condition("across", "any"))
    # (a, b): s1 -> mean over X speakers = 2/3, s2 -> 0.5, so 7/12; (b, a): 0 (libri-light's order).
    assert result.collapse() == pytest.approx(7 / 24)
    # fastabx's zerospeech_abx averages (speaker, X speaker) jointly: (a, b) -> 0.625.
    assert result.collapse(levels=["speaker"]) == pytest.approx(0.625 / 2)


def test_collapse_matches_the_reference_averaging_and_details_keep_the_rest():
    condition = zerospeech_condition("across", "within")
    result = AbxResult(ACROSS_CELLS, condition)
    assert result.collapse() == pytest.approx(
        reference_error(ACROSS_CELLS.drop(columns="error"), condition)
    )
    per_pair = result.details()
    assert list(per_pair.columns) == ["phone", "phone_b", "error", "n_triplets"]
    assert per_pair["error"].mean() == pytest.approx(result.collapse())
    per_speaker = result.details(levels=["context"])
    assert set(per_speaker["speaker"]) == {"s1", "s2"}


def test_bootstrap_interval_brackets_the_estimate_and_is_seeded():
    result = AbxResult(ACROSS_CELLS, zerospeech_condition("across", "within"))
    a = result.bootstrap(n_boot=200, seed=3)
    b = result.bootstrap(n_boot=200, seed=3)
    assert a.low <= a.estimate <= a.high and a.estimate == result.error
    np.testing.assert_array_equal(a.samples, b.samples)
    with pytest.raises(ValueError, match="cannot resample 'talker'"):
        result.bootstrap(unit="talker")


def test_bootstrap_of_a_single_speaker_is_degenerate():
    cells = ACROSS_CELLS.assign(speaker="s1", speaker_x="s1")
    result = AbxResult(cells, zerospeech_condition("across", "within"))
    interval = result.bootstrap(n_boot=50)
    assert interval.low == interval.high == pytest.approx(result.error)


def small_set(seed: int, dim: int = 4):
    rng = np.random.default_rng(seed)
    features, rows = {}, []
    for f in range(6):
        lengths = rng.integers(1, 4, 12)
        features[f"f{f}"] = rng.standard_normal((lengths.sum() + 1, dim)).astype(np.float32)
        bounds = np.concatenate([[0], np.cumsum(lengths)])
        for k in range(12):
            rows.append(
                {
                    "file": f"f{f}",
                    "onset": round(bounds[k] * 0.02, 2),
                    "offset": round(bounds[k + 1] * 0.02, 2),
                    "phone": "abc"[k % 3],
                    "prev": "x",
                    "next": "y",
                    "speaker": f"s{f % 3}",
                }
            )
    return features, pd.DataFrame(rows)


def test_paired_difference_of_a_feature_set_with_itself_is_exactly_zero():
    features, items = small_set(0)
    diff = paired_difference(features, features, items, speaker="within", context="any", n_boot=100)
    assert diff.difference == 0 and diff.interval.low == 0 and diff.interval.high == 0


def test_paired_difference_is_the_difference_of_the_errors():
    features, items = small_set(1)
    noisy = {
        k: v + np.random.default_rng(9).standard_normal(v.shape).astype(np.float32)
        for k, v in features.items()
    }
    options = dict(speaker="across", context="any")
    diff = paired_difference(features, noisy, items, n_boot=100, **options)
    expected = float(score(features, items, **options)) - float(score(noisy, items, **options))
    assert diff.difference == pytest.approx(expected)
    assert diff.interval.low <= diff.difference <= diff.interval.high
    again = paired_difference(
        diff.a, diff.b, n_boot=100
    )  # results can be passed instead of features
    np.testing.assert_array_equal(again.interval.samples, diff.interval.samples)


@pytest.mark.parametrize(
    ("speaker", "context"), [("within", "any"), ("across", "any"), ("across", "within")]
)
def test_subsampling_limits_sets_and_is_seeded(speaker, context):
    features, items = small_set(2)
    full = score(features, items, speaker=speaker, context=context)
    everything = score(
        features, items, speaker=speaker, context=context, max_size_group=1000, max_x_across=1000
    )
    pd.testing.assert_frame_equal(full.cells, everything.cells)
    options = dict(speaker=speaker, context=context, max_size_group=2, max_x_across=1)
    one, same, other = (score(features, items, seed=s, **options) for s in (1, 1, 2))
    pd.testing.assert_frame_equal(one.cells, same.cells)
    assert not one.cells.equals(other.cells)
    assert (one.cells[["n_a", "n_b", "n_x"]] <= 2).all().all()
    if speaker == "across":  # one X speaker per (A set, B set)
        per_a = one.cells.groupby(
            [c for c in ("phone", "phone_b", "context", "speaker") if c in one.cells]
        )
        assert (per_a["speaker_x"].nunique() == 1).all()


def test_summary_has_the_cli_json_keys():
    features, items = small_set(3)
    summary = score(features, items, speaker="within", context="any").summary()
    assert {"score", "speaker", "context", "n_cells", "n_triplets"} <= set(summary)
    assert isinstance(summary["n_triplets"], int)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from(["b", "a", "c10", "c9", 3, 1.5, "3"]), min_size=1, max_size=40),
    st.lists(st.integers(0, 4), min_size=1, max_size=40),
)
def test_label_codes_and_groups_equal_the_sorting_reference(labels, others) -> None:
    """Cell labels are coded without sorting every cell's text (a set of the distinct values);
    the codes and groups must be those of numpy's unique over the texts and over rows."""
    from probes.abx_engine.collapse import _first_appearance, _group, _text_codes

    values = np.array(labels, dtype=object)
    text = values.astype(str)
    distinct, index = _text_codes(values)
    reference, first, inverse = np.unique(text, return_index=True, return_inverse=True)
    assert distinct.tolist() == reference.tolist() and index.tolist() == inverse.tolist()
    rank = np.empty(len(first), np.int64)
    rank[np.argsort(first)] = np.arange(len(first))  # pandas.factorize's order: first appearance
    assert _first_appearance(index).tolist() == rank[inverse].tolist()
    n = min(len(labels), len(others))
    codes = {"a": index[:n], "b": np.array(others[:n], np.int64)}
    ids, first_rows, count = _group(codes, ["a", "b"], n)
    rows = np.stack([codes["a"], codes["b"]], axis=1)
    uniq, first_ref, ids_ref = np.unique(rows, axis=0, return_index=True, return_inverse=True)
    assert count == len(uniq)
    assert ids.tolist() == ids_ref.reshape(-1).tolist()
    assert first_rows.tolist() == first_ref.tolist()


@st.composite
def collapse_cases(draw):
    """A collapse plan on random cells (0-30, labels of a few codes) and levels, and the arguments
    of ``evaluate_many``: values and present shared by every resample or one row each, present
    None, multiplicities 0-3 with rows of zeros (every group drops out: NaN), either dtype."""
    from probes.abx_engine.collapse import CollapsePlan

    labels = draw(st.sampled_from([
        ["phone", "phone_b", "context", "speaker", "speaker_x"],
        ["phone", "phone_b", "context", "speaker"],
        ["phone", "speaker", "speaker_x"],
    ]))  # fmt: skip
    n_cells = draw(st.integers(0, 30))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    cells = {c: rng.integers(0, draw(st.integers(1, 4)), n_cells) for c in labels}
    # Levels never average "phone" out: what is left last (as in every condition).
    names = [c for c in labels if not c.endswith("_x") and c != "phone"]
    level = st.lists(st.sampled_from(names), min_size=1, max_size=2, unique=True).map(tuple)
    plan = CollapsePlan(cells, labels, draw(st.lists(level, max_size=3)), "speaker")
    n_boot = draw(st.integers(1, 12))
    units = len(plan.unit_labels)
    multiplicities = rng.integers(0, 4, (n_boot, units)) * (rng.random((n_boot, units)) < 0.7)
    multiplicities[rng.random(n_boot) < 0.2] = 0
    shape = draw(st.sampled_from([(n_cells,), (n_boot, n_cells)]))
    present = draw(st.sampled_from([None, (n_cells,), (n_boot, n_cells)]))
    present = None if present is None else rng.random(present) < 0.7
    values = rng.random(shape)
    if present is not None and draw(st.booleans()):  # an absent cell's value is never read
        values = np.where(present, values, np.nan)
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    return plan, values, multiplicities.astype(np.float64), dtype, present


@settings(max_examples=300, deadline=None)
@given(
    case=collapse_cases(),
    chunk=st.sampled_from([(1, 1), (7, 3), (2**16, 16)]),
    cells_per_rank=st.sampled_from([0, 32, 10**9]),
)
def test_evaluate_many_is_evaluate_per_resample_bit_for_bit(case, chunk, cells_per_rank) -> None:
    """The vectorised bootstrap (every resample at once, in chunks; groups summed by ranks or by a
    bincount) gives each resample's ``evaluate`` exactly: the same floats, NaN where all weight
    is 0."""
    from unittest import mock

    from probes.abx_engine import collapse

    plan, values, multiplicities, dtype, present = case

    def row(a, k):
        return a if a is None or a.ndim == 1 else a[k]

    expected = np.array([
        plan.evaluate(row(values, k), m, dtype, row(present, k))
        for k, m in enumerate(multiplicities)
    ])  # fmt: skip
    options = dict(_CHUNK_FLOATS=chunk[0], _MIN_ROWS=chunk[1], _CELLS_PER_RANK=cells_per_rank)
    with mock.patch.multiple(collapse, **options):
        got = plan.evaluate_many(values, multiplicities, dtype, present)
    assert got.shape == expected.shape and got.dtype == np.float64
    nan = np.isnan(expected)
    np.testing.assert_array_equal(np.isnan(got), nan)
    np.testing.assert_array_equal(got[~nan].view(np.int64), expected[~nan].view(np.int64))
