"""Cells split by the file of their X items, and the two-level bootstrap (speakers, then files).

The engine splits every cell's counts by the file its X items come from; the pieces must add up to the
cell exactly, on the numpy path and the Numba kernels, and equal the slow reference's per-file counts.
The two-level bootstrap (probes/abx_engine/hierarchical.py) must equal the slow reference that writes
every resample out (tests/file_bootstrap_reference.py), reduce to the speaker bootstrap when each
speaker has one file, and give wider intervals when files vary.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from abx_reference import reference_cells
from file_bootstrap_reference import reference_file_samples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_abx_reference import abx_sets

from probes.abx_engine import (
    AbxResult,
    DroppedItemsWarning,
    NoValidCellError,
    paired_difference,
    score,
    small,
)
from probes.abx_engine import blocks as blocks_module
from probes.abx_engine.conditions import zerospeech_condition
from probes.abx_engine.engine import make_condition
from probes.abx_engine.hierarchical import FileCounts

CONDITIONS = [(s, c) for s in ("within", "across") for c in ("within", "any", "across")]


def item_set(seed: int = 0, n_files: int = 6, n_items: int = 14, dim: int = 5):
    """Random features on `n_files` files of 3 speakers, and their item table."""
    rng = np.random.default_rng(seed)
    features, rows = {}, []
    for f in range(n_files):
        lengths = rng.integers(1, 5, n_items)
        features[f"f{f}"] = rng.standard_normal((lengths.sum() + 1, dim)).astype(np.float32)
        bounds = np.concatenate([[0], np.cumsum(lengths)])
        for k in range(n_items):
            rows.append(
                {"file": f"f{f}", "onset": round(bounds[k] * 0.02, 2),
                 "offset": round(bounds[k + 1] * 0.02, 2), "phone": "abcd"[rng.integers(4)],
                 "prev": "xy"[rng.integers(2)], "next": "z", "speaker": f"s{f % 3}"}
            )  # fmt: skip
    return features, pd.DataFrame(rows)


def pieces_table(result: AbxResult) -> pd.DataFrame:
    """The result's pieces with their cells' labels and the file's name."""
    f = result.files
    table = result.cells.iloc[f.cell][result.labels].reset_index(drop=True)
    return table.assign(x_file=f.names[f.file].astype(str), correct2=f.correct2,
                        n_triplets=f.n_triplets)  # fmt: skip


@pytest.mark.parametrize("numpy_path", [True, False])
@pytest.mark.parametrize("compat", [None, "librilight"])
@pytest.mark.parametrize(("speaker", "context"), CONDITIONS)
def test_pieces_add_up_to_their_cells(monkeypatch, speaker, context, compat, numpy_path):
    if not numpy_path:  # the Numba kernels for every block, tiny tiles and chunks
        monkeypatch.setattr(small, "SMALL_WORK", -1)
        monkeypatch.setattr(blocks_module, "TILE_ELEMENTS", 7)
    features, items = item_set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DroppedItemsWarning)
        result = score(features, items, speaker=speaker, context=context, compat=compat)
    f = result.files
    for column in ("correct2", "n_triplets"):
        summed = np.bincount(f.cell, weights=getattr(f, column), minlength=result.n_cells)
        np.testing.assert_array_equal(summed, result.cells[column].to_numpy())
    assert (np.diff(f.cell) >= 0).all() and (f.n_triplets > 0).all()
    assert f.names.tolist() == [f"f{k}" for k in range(6)]
    assert f.speakers.tolist() == [f"s{k % 3}" for k in range(6)]
    x_speaker = "speaker_x" if speaker == "across" else "speaker"
    owners = result.cells[x_speaker].to_numpy()[f.cell]
    assert (f.speakers[f.file] == owners).all()  # a piece's file belongs to its X speaker


def test_subsampled_results_have_no_pieces():
    features, items = item_set()
    result = score(features, items, speaker="across", context="any", max_size_group=2)
    assert result.files is None
    with pytest.raises(ValueError, match="no per-file counts"):
        result.bootstrap(n_boot=10, files=True)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=abx_sets(), condition=st.sampled_from(CONDITIONS))
def test_pieces_equal_the_reference_per_x_file(data, condition):
    features, items, _ = data
    expected = reference_cells(features, items, make_condition(*condition), by_x_file=True)
    try:
        fast = score(features, items, speaker=condition[0], context=condition[1])
    except NoValidCellError:
        assert expected.empty
        return
    labels = [c for c in expected.columns if c not in ("n_triplets", "correct2", "near_ties")]
    merged = pieces_table(fast).merge(expected, on=labels, how="outer", suffixes=("", "_ref"),
                                      indicator=True)  # fmt: skip
    assert (merged["_merge"] == "both").all(), merged[merged["_merge"] != "both"]
    assert (merged["n_triplets"] == merged["n_triplets_ref"]).all()
    slack = 2 * merged["near_ties"]  # float32 against float64 near-ties, as for the cells
    assert ((merged["correct2"] - merged["correct2_ref"]).abs() <= slack).all()


def test_zrc_ties_go_to_the_file_of_their_x(monkeypatch, tmp_path):
    """Compat mode, euclidean next to zero frames (distances ~2e12): zrc-abx2's extra ties are
    counted per X item, and the pieces still add up to the cells."""
    from test_abx_zrc import write_set

    from probes.abx_engine import load_feature_dir
    from training.data import read_items

    items = read_items(write_set(tmp_path))
    features = load_feature_dir(tmp_path / "features", items["file"].unique().tolist())
    ties = []
    original = small.zrc_diagonal_ties

    def spy(*args, **kwargs):
        found = original(*args, **kwargs)
        ties.append(int(found[2].sum()) if kwargs.get("per_item") else 0)
        return found

    monkeypatch.setattr(small, "zrc_diagonal_ties", spy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DroppedItemsWarning)
        result = score(features, items, speaker="within", context="any", distance="euclidean",
                       compat="librilight", frequency=50.0)  # fmt: skip
    assert sum(ties) > 0  # the set has such ties
    f = result.files
    summed = np.bincount(f.cell, weights=f.correct2, minlength=result.n_cells)
    np.testing.assert_array_equal(summed, result.cells["correct2"].to_numpy())


# --- the two-level bootstrap on hand-made pieces ----------------------------------------------------


@st.composite
def piece_results(draw, one_file: bool = False, speaker: str | None = None):
    """An AbxResult with random per-file counts: 1-3 speakers with 1-3 files each, cells of phone
    pairs in up to 2 contexts, each cell with pieces in a random non-empty subset of its X speaker's
    files."""
    speaker = speaker or draw(st.sampled_from(["within", "across"]))
    context = draw(st.sampled_from(["within", "any"]))
    n_speakers = draw(st.integers(2 if speaker == "across" else 1, 3))
    speakers = [f"s{k}" for k in range(n_speakers)]
    files = {s: [f"{s}f{k}" for k in range(1 if one_file else draw(st.integers(1, 3)))]
             for s in speakers}  # fmt: skip
    names = [f for s in speakers for f in files[s]]
    rows, pieces = [], []
    contexts = ["c1", "c2"] if context == "within" else [None]
    pairs = [("a", "b"), ("b", "a"), ("a", "c")]
    for ctx in contexts:
        for phone, phone_b in pairs:
            for s in speakers:
                for x in speakers if speaker == "across" else [s]:
                    if (speaker == "across" and x == s) or not draw(st.booleans()):
                        continue
                    chosen = draw(st.lists(st.sampled_from(files[x]), min_size=1, unique=True))
                    counts = []
                    for file in chosen:
                        triplets = draw(st.integers(1, 6))
                        counts.append((names.index(file), draw(st.integers(0, 2 * triplets)),
                                       triplets))  # fmt: skip
                    row = {"phone": phone, "phone_b": phone_b, "speaker": s}
                    row |= {"context": ctx} if ctx else {}
                    row |= {"speaker_x": x} if speaker == "across" else {}
                    correct2, triplets = (sum(c[k] for c in counts) for k in (1, 2))
                    rows.append(row | {"n_a": 2, "n_b": 1, "n_x": 2, "n_triplets": triplets,
                                       "correct2": correct2})  # fmt: skip
                    pieces += [(len(rows) - 1, *c) for c in sorted(counts)]
    if not rows:
        rows.append({"phone": "a", "phone_b": "b", "speaker": "s0", "context": "c1",
                     "speaker_x": speakers[-1], "n_a": 2, "n_b": 1, "n_x": 2, "n_triplets": 2,
                     "correct2": 1})  # fmt: skip
        x = speakers[-1] if speaker == "across" else "s0"
        pieces.append((0, names.index(files[x][0]), 1, 2))
    cells = pd.DataFrame(rows)
    condition = zerospeech_condition(speaker, context)
    order = ["phone", "phone_b", *condition.by, *condition.across]
    order += [f"{c}_x" for c in condition.across]
    cells = cells[order + ["n_a", "n_b", "n_x", "n_triplets", "correct2"]]
    cells["error"] = 1 - cells["correct2"] / (2 * cells["n_triplets"])
    cell, file, correct2, triplets = (np.array(v, np.int64) for v in zip(*pieces, strict=True))
    owner = np.array([files_owner for s in speakers for files_owner in [s] * len(files[s])],
                     dtype=object)  # fmt: skip
    counts = FileCounts(cell, file, correct2, triplets, np.array(names, dtype=object), owner)
    return AbxResult(cells, condition, files=counts)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(result=piece_results(), seed=st.integers(0, 5))
def test_two_level_bootstrap_equals_the_written_out_reference(result, seed):
    interval = result.bootstrap(n_boot=25, seed=seed, files=True)
    expected = reference_file_samples(result, 25, seed)
    np.testing.assert_allclose(interval.samples, expected, rtol=0, atol=1e-12)
    assert interval.estimate == float(result)  # the estimate is the engine's own averaging
    assert interval.unit == "speaker, file"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(result=piece_results(one_file=True), seed=st.integers(0, 5))
def test_with_one_file_per_speaker_it_is_the_speaker_bootstrap(result, seed):
    speakers_only = result.bootstrap(n_boot=40, seed=seed)
    with_files = result.bootstrap(n_boot=40, seed=seed, files=True)
    np.testing.assert_allclose(with_files.samples, speakers_only.samples, rtol=0, atol=1e-12)


def file_varied(seed: int, spread: float, n_speakers: int = 4, n_files: int = 8) -> AbxResult:
    """Within-speaker cells whose X items come from every file of their speaker; each file's error
    is the cell's plus a file effect of size `spread` (0: every file of a cell scores alike)."""
    rng = np.random.default_rng(seed)
    rows, pieces = [], []
    names = [f"s{s}f{f}" for s in range(n_speakers) for f in range(n_files)]
    effect = rng.uniform(-spread, spread, len(names))
    for s in range(n_speakers):
        for phone, phone_b in [("a", "b"), ("b", "a"), ("a", "c"), ("c", "a")]:
            base = rng.uniform(0.2, 0.4)
            errors = np.clip(base + effect[s * n_files : (s + 1) * n_files], 0, 1)
            correct2 = np.round((1 - errors) * 2 * 50).astype(np.int64)  # 50 triplets per file
            rows.append({"phone": phone, "phone_b": phone_b, "speaker": f"s{s}", "n_a": 2,
                         "n_b": 2, "n_x": n_files, "n_triplets": 50 * n_files,
                         "correct2": int(correct2.sum())})  # fmt: skip
            pieces += [(len(rows) - 1, s * n_files + f, int(correct2[f]), 50)
                       for f in range(n_files)]  # fmt: skip
    cells = pd.DataFrame(rows)
    cells["error"] = 1 - cells["correct2"] / (2 * cells["n_triplets"])
    cell, file, correct2, triplets = (np.array(v, np.int64) for v in zip(*pieces, strict=True))
    owner = np.array([n.split("f")[0] for n in names], dtype=object)
    counts = FileCounts(cell, file, correct2, triplets, np.array(names, dtype=object), owner)
    return AbxResult(cells, zerospeech_condition("within", "any"), files=counts)


def test_no_file_variation_leaves_the_speaker_interval_and_file_variation_widens_it():
    """Files that all score alike: resampling them changes nothing (every cell keeps X items of
    some drawn file), so the interval is the speaker bootstrap's. Files that differ: wider, on
    average over 20 data sets (weakly: any one data set may draw narrower by chance)."""
    alike = file_varied(0, spread=0.0)
    np.testing.assert_allclose(alike.bootstrap(n_boot=200, files=True).samples,
                               alike.bootstrap(n_boot=200).samples, atol=1e-12)  # fmt: skip
    widths = []
    for seed in range(20):
        result = file_varied(seed, spread=0.3)
        intervals = [result.bootstrap(n_boot=200, seed=seed, files=files) for files in (0, 1)]
        widths.append([iv.high - iv.low for iv in intervals])
    speakers_only, with_files = np.mean(widths, axis=0)
    assert with_files > 1.2 * speakers_only


def test_paired_two_level_difference_uses_the_same_draws_for_both():
    features, items = item_set(seed=4)
    rng = np.random.default_rng(9)
    noisy = {k: v + rng.standard_normal(v.shape).astype(np.float32) for k, v in features.items()}
    options = dict(speaker="across", context="within")
    a, b = score(features, items, **options), score(noisy, items, **options)
    diff = paired_difference(a, b, n_boot=60, files=True)
    assert diff.difference == pytest.approx(float(a) - float(b))
    alone = [r.bootstrap(n_boot=60, files=True).samples for r in (a, b)]
    np.testing.assert_allclose(diff.interval.samples, alone[0] - alone[1], atol=1e-12)
    same = paired_difference(a, a, n_boot=60, files=True)
    assert same.interval.low == same.interval.high == 0
    with pytest.raises(ValueError, match="same cells and files"):
        paired_difference(a, score(features, items.iloc[:-5], **options), n_boot=5, files=True)


def test_zrc_ties_never_read_the_distances_a_block_leaves_uncomputed(monkeypatch, tmp_path):
    """A within-type block computes only its groups' own distances; the rest of its array is
    uninitialised memory, which may hold NaN. The ties must come out the same (once it hid them
    all: `dist.max()` over the whole block was NaN, so the suite failed now and then)."""
    from test_abx_zrc import write_set

    from probes.abx_engine import blocks, load_feature_dir
    from training.data import read_items

    items = read_items(write_set(tmp_path))
    features = load_feature_dir(tmp_path / "features", items["file"].unique().tolist())
    options = dict(speaker="within", context="any", distance="euclidean", compat="librilight",
                   frequency=50.0)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DroppedItemsWarning)
        expected = score(features, items, **options)
        empty = np.empty
        monkeypatch.setattr(
            blocks.np, "empty", lambda *a, **k: np.full_like(empty(*a, **k), np.nan)
        )
        garbage = score(features, items, **options)
    np.testing.assert_array_equal(garbage.cells["correct2"], expected.cells["correct2"])
    assert garbage.error == expected.error
