"""open_feature_dir: scoring reads only the items' frames straight from the files, bit for bit as
the whole-set Ragged did, and names the file for every bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from probes.abx_engine import (
    FeatureFileError,
    FeatureFiles,
    Ragged,
    load_feature_dir,
    open_feature_dir,
    prepare,
    score,
)
from probes.abx_engine.distances import prepare_frames
from probes.abx_engine.slicing import DroppedItemsWarning
from training.data import read_items

HEADER = "#file onset offset #phone prev-phone next-phone speaker\n"


def write_set(root, *, gaps: bool = True, dtypes=(np.float32,), n_files: int = 6, dim: int = 5):
    """features/f<k>.npy (20 to 40 frames) and items.item: phones a/b/c, 2 speakers; with ``gaps``,
    some frames belong to no item and some items overlap."""
    rng = np.random.default_rng(1)
    (root / "features").mkdir()
    lines = []
    for f in range(n_files):
        frames = int(rng.integers(20, 41))
        array = rng.standard_normal((frames, dim)) * 3
        np.save(root / "features" / f"f{f}.npy", array.astype(dtypes[f % len(dtypes)]))
        t, k = 0.0, 0
        while t + 0.1 < frames * 0.02:
            length = 0.02 * int(rng.integers(1, 5))
            lines.append(f"f{f} {t:.2f} {t + length:.2f} {'abc'[k % 3]} x y s{f % 2}\n")
            step = length + (0.02 * int(rng.integers(-1, 3)) if gaps else 0.0)
            t, k = round(t + max(step, 0.02), 2), k + 1
    (root / "items.item").write_text(HEADER + "".join(lines))
    return root / "features", root / "items.item"


def old_frames(prepared, ragged: Ragged) -> np.ndarray:
    """Prepared.frames as it was: one fancy index over the whole concatenated set."""
    positions = np.array([ragged.position(n) for n in prepared.files])
    start = ragged.offsets[positions[prepared.item_file]] + prepared.item_start
    offsets = prepared.offsets_raw
    index = np.repeat(start - offsets[:-1], prepared.item_length) + np.arange(offsets[-1])
    frames = np.ascontiguousarray(ragged.data[index], dtype=np.float32)
    return prepare_frames(
        frames, offsets, prepared.distance, prepared.pooling, prepared.compat == "librilight"
    )[0]


@pytest.mark.parametrize("gaps", [False, True])
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"speaker": "across", "context": "any", "distance": "euclidean"},
        {"pooling": "mean", "distance": "cosine"},
        {"compat": "librilight", "context": "any"},
    ],
)
def test_frames_and_scores_are_the_whole_set_gathers_bit_for_bit(tmp_path, gaps, options):
    features, item = write_set(tmp_path, gaps=gaps, dtypes=(np.float32, np.float64, np.float16))
    items = read_items(item)
    names = items["file"].unique().tolist()
    files, ragged = open_feature_dir(features, names), load_feature_dir(features, names)
    assert isinstance(files, FeatureFiles) and files.dim == ragged.dim == 5
    np.testing.assert_array_equal(files.lengths, ragged.lengths)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DroppedItemsWarning)
        prepared = prepare(items, files, **options)
        expected = old_frames(prepared, ragged)
        assert expected.dtype == np.float32
        for source in (files, ragged, dict(ragged)):
            np.testing.assert_array_equal(prepared.frames(source), expected)
        reference = score(ragged, items, **options)
        for source in (files, dict(ragged)):
            result = score(source, items, **options)
            pd.testing.assert_frame_equal(result.cells, reference.cells)
            assert float(result) == float(reference)


def test_a_feature_files_mapping_reads_whole_files(tmp_path):
    import torch

    features, item = write_set(tmp_path, n_files=3)
    torch.save(torch.from_numpy(np.load(features / "f1.npy")), features / "f1.pt")
    (features / "f1.npy").unlink()
    fortran = np.asfortranarray(np.load(features / "f2.npy"))
    np.save(features / "f2.npy", fortran)
    files = open_feature_dir(features, ["f0", "f1", "f2", "f0"])
    assert list(files) == ["f0", "f1", "f2"] and len(files) == 3 and "f1" in files
    assert repr(files).startswith("FeatureFiles(3 files, ")
    np.testing.assert_array_equal(files["f2"], fortran)
    np.testing.assert_array_equal(files.block(0, 3, 7), np.load(features / "f0.npy")[3:7])
    np.testing.assert_array_equal(files.block(1, 2, 4), files["f1"][2:4])
    items = read_items(item)
    pd.testing.assert_frame_equal(score(files, items).cells, score(dict(files), items).cells)


def test_bad_files_are_named_when_opened(tmp_path):
    features, _ = write_set(tmp_path, n_files=3)
    np.save(features / "f1.npy", np.zeros((7, 4), np.float32))
    with pytest.raises(
        FeatureFileError, match=r"features for 'f1' have dimension 4, others have 5"
    ):
        open_feature_dir(features, ["f0", "f1"])
    np.save(features / "f1.npy", np.zeros((0, 5), np.float32))
    with pytest.raises(
        FeatureFileError, match=r"f1.npy: features of shape \(0, 5\) have no frames"
    ):
        open_feature_dir(features, ["f0", "f1"])
    np.save(features / "f1.npy", np.zeros(5, np.float32))
    with pytest.raises(FeatureFileError, match=r"f1.npy: features must be \[frames, dim\]"):
        open_feature_dir(features, ["f1"])
    np.save(features / "f1.npy", np.zeros((9, 5), np.float32))
    data = (features / "f1.npy").read_bytes()
    (features / "f1.npy").write_bytes(data[:-8])
    with pytest.raises(FeatureFileError, match=r"f1.npy: cannot read features: .*truncated"):
        open_feature_dir(features, ["f1"])
    (features / "f1.npy").write_bytes(b"not a numpy file")
    with pytest.raises(FeatureFileError, match=r"f1.npy: cannot read features"):
        open_feature_dir(features, ["f1"])
    np.save(features / "f1.npy", np.array([[None]], dtype=object))
    with pytest.raises(FeatureFileError, match=r"f1.npy: cannot read features"):
        open_feature_dir(features, ["f1"])
    with pytest.raises(FileNotFoundError, match=r"#file 'f9': no feature file f9.npy"):
        open_feature_dir(features, ["f0", "f9"])
    with pytest.raises(FileNotFoundError, match=r"feature directory .*nowhere does not exist"):
        open_feature_dir(tmp_path / "nowhere", ["f0"])


def test_a_file_cut_short_after_opening_is_named(tmp_path):
    features, item = write_set(tmp_path, n_files=3)
    files = open_feature_dir(features, ["f0", "f1", "f2"])
    data = (features / "f1.npy").read_bytes()
    (features / "f1.npy").write_bytes(data[: len(data) // 2])
    with pytest.raises(FeatureFileError, match=r"f1.npy: cannot read features: .*truncated"):
        score(files, read_items(item))


@pytest.mark.parametrize("kind", ["files", "ragged", "mapping"])
def test_nan_is_named_in_used_frames_and_ignored_elsewhere(tmp_path, kind):
    features, item = write_set(tmp_path, gaps=False, n_files=3)
    items = read_items(item)
    array = np.load(features / "f1.npy")
    last_used = int(np.ceil(items.loc[items["file"] == "f1", "offset"].max() * 50 - 0.5))
    assert last_used < len(array)  # the file's last frames belong to no item
    array[last_used:, 2] = np.nan
    np.save(features / "f1.npy", array)
    names = ["f0", "f1", "f2"]

    def source():
        files = open_feature_dir(features, names)
        return {"files": files, "ragged": load_feature_dir(features, names),
                "mapping": {n: files[n] for n in names}}[kind]  # fmt: skip

    clean = score(source(), items)
    array[last_used:] = 0.0  # the unused frames do not count
    np.save(features / "f1.npy", array)
    assert float(score(source(), items)) == float(clean)
    array[[6, 11], 3] = [np.inf, np.nan]
    np.save(features / "f1.npy", array)
    with pytest.raises(
        FeatureFileError, match=r"features for 'f1' contain NaN or Inf \(first at frame 6\)"
    ):
        score(source(), items)


def test_frame_counts_and_missing_files_are_checked_for_feature_files(tmp_path):
    features, item = write_set(tmp_path, n_files=3)
    items = read_items(item)
    prepared = prepare(items, open_feature_dir(features, ["f0", "f1", "f2"]))
    np.save(features / "f2.npy", np.load(features / "f2.npy")[:-1])
    with pytest.raises(ValueError, match="'f2' have .* frames, not the"):
        prepared.score(open_feature_dir(features, ["f0", "f1", "f2"]))
    with pytest.raises(FileNotFoundError, match="no features for file 'f2'"):
        prepared.score(open_feature_dir(features, ["f0", "f1"]))


def test_large_frames_get_their_own_mapping_and_the_same_bits(tmp_path, monkeypatch):
    import mmap

    from probes.abx_engine import gather

    features, item = write_set(tmp_path)
    items = read_items(item)
    files = open_feature_dir(features, items["file"].unique().tolist())
    prepared = prepare(items, files)
    expected = prepared.frames(files)
    monkeypatch.setattr(gather, "LARGE_FRAMES", 0)  # every array is large
    frames = prepared.frames(files)
    base = frames
    while isinstance(base, np.ndarray):
        base = base.base
    assert isinstance(getattr(base, "obj", base), mmap.mmap)
    np.testing.assert_array_equal(frames, expected)
    pd.testing.assert_frame_equal(prepared.score(files).cells, score(dict(files), items).cells)
