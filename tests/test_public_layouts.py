"""The embedded corpus re-laid as the public releases lay it out (Karpathy SpokenCOCO, LXMERT TSV,
FaST-VGS HDF5, LibriSpeech flac folders) trains, is probed, and scores exactly as the original."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from public_layouts import expected_regions, relay_librispeech, relay_spokencoco

from training.data import CaptionDataset, load_split, open_regions


@pytest.fixture(scope="module")
def public(small_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    return relay_spokencoco(small_corpus, tmp_path_factory.mktemp("public"))


def test_karpathy_splits_regroup_the_corpus_captions(small_corpus: Path, public: dict) -> None:
    for split in ("train", "val", "test"):
        ours, theirs = load_split(small_corpus, split), load_split(public["coco"], split)
        assert [e["key"] for e in theirs] == [e["key"] for e in ours]
        for mine, relaid in zip(ours, theirs, strict=True):
            assert [c["text"] for c in relaid["captions"]] == [c["text"] for c in mine["captions"]]
            assert [c["wav"].read_bytes() for c in relaid["captions"]] == [
                c["wav"].read_bytes() for c in mine["captions"]
            ]
            assert all(c["uttid"] == c["wav"].stem for c in relaid["captions"])


def test_tsv_and_hdf5_read_the_same_2048_d_regions(small_corpus: Path, public: dict) -> None:
    expected = expected_regions(small_corpus)
    tsv, hdf5 = open_regions(public["tsvs"]), open_regions(public["hdf5_dir"])
    assert sorted(tsv) == sorted(hdf5) == sorted(expected)
    assert tsv.dim == hdf5.dim == 2048
    for key, (feats, boxes) in expected.items():
        for regions in (tsv, hdf5):
            got_feats, got_boxes = regions[key]
            assert torch.equal(got_feats, torch.from_numpy(feats))
            assert np.allclose(got_boxes.numpy(), boxes, atol=1e-6)


@pytest.mark.slow  # one short epoch of the tiny preset: about 15 s on a quiet machine
def test_train_and_recall_on_karpathy_with_lxmert_tsv(
    small_corpus: Path, public: dict, tmp_path: Path
) -> None:
    from analysis.cli import main
    from probes import recall

    run = tmp_path / "run"
    tsvs = [str(p) for p in public["tsvs"]]
    assert main(["train", str(public["coco"]), str(run), "--preset", "tiny", "--schedule", "vgs+",
                 "--stage-epochs", "1", "--batch-size", "16", "--set", "train_subset=32",
                 "--regions", *tsvs, "--no-progress"]) == 0  # fmt: skip
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["region_dim"] == 2048
    test = CaptionDataset(public["coco"], "test", regions=public["tsvs"])
    via_tsv = recall(run, "test", corpus=public["coco"], regions=public["tsvs"], progress=False)
    via_hdf5 = recall(
        run, "test", corpus=public["coco"], regions=public["hdf5_dir"], progress=False
    )
    assert via_tsv.attrs["split_file"].endswith("SpokenCOCO_test_unrolled_karpathy.json")
    xr.testing.assert_equal(via_tsv, via_hdf5)
    assert np.isfinite(via_tsv.values).all()
    # A run whose config.json records its regions is recalled on its own corpus with nothing else.
    config["regions"] = tsvs
    (run / "config.json").write_text(json.dumps(config))
    xr.testing.assert_equal(recall(run, "test", progress=False), via_tsv)
    assert test.image_keys == [e["key"] for e in load_split(small_corpus, "test")]


@pytest.mark.slow  # two extractions of the read set: about 15 s on a quiet machine
def test_librispeech_flac_folders_score_as_the_original_items(
    small_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from probes import abx
    from training import SSLVGS, preset

    monkeypatch.setenv("SSLVGS_CACHE", str(tmp_path / "cache"))
    items, dev_clean = relay_librispeech(small_corpus / "abx" / "read", tmp_path)
    assert sorted(p.suffix for p in dev_clean.rglob("*.*")) == [".flac"] * len(
        set(np.loadtxt(items, dtype=str, skiprows=1, usecols=0))
    )
    torch.manual_seed(0)
    model = SSLVGS(preset("tiny")[0]).eval()
    original = abx(model, [2, 4], small_corpus / "abx" / "read" / "items.item", progress=False)
    relaid = abx(model, [2, 4], items, wavs=dev_clean, progress=False)
    np.testing.assert_array_equal(relaid.values, original.values)
