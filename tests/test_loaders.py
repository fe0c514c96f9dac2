"""Loaders: wavs, SpokenCOCO splits, region features (corpus and LXMERT TSV), captions, alignments."""

from __future__ import annotations

import base64
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.signal import resample_poly

from training.data import (
    AlignmentError,
    CaptionDataset,
    RegionError,
    RegionFeatures,
    SpokenCocoError,
    WavError,
    collate_captions,
    load_split,
    open_regions,
    read_alignment,
    read_wav,
    write_alignment,
)
from training.data.audio import wav_bytes, wav_seconds
from training.fileio import write_npz

# ---------------------------------------------------------------- wavs


def _tone(rate: int, seconds: float, hz: float) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return 0.5 * np.sin(2 * np.pi * hz * t)


def _dominant_hz(wav: torch.Tensor, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(wav.numpy()))
    return float(np.fft.rfftfreq(wav.shape[0], 1 / rate)[spectrum.argmax()])


def test_16k_mono_reads_back_exactly(tmp_path: Path) -> None:
    samples = (np.random.default_rng(0).normal(0, 3000, 8000)).astype(np.int16)
    (tmp_path / "a.wav").write_bytes(wav_bytes(samples, 16000))
    wav = read_wav(tmp_path / "a.wav")
    assert wav.dtype == torch.float32 and wav.shape == (8000,)
    assert torch.equal(wav, torch.from_numpy(samples.astype(np.float32) / 32768))


@pytest.mark.parametrize("rate", [8000, 22050, 44100])
def test_other_rates_are_resampled_to_16k(tmp_path: Path, rate: int) -> None:
    soundfile.write(tmp_path / "a.wav", _tone(rate, 1.0, 440.0), rate, subtype="FLOAT")
    wav = read_wav(tmp_path / "a.wav")
    assert wav.shape[0] == pytest.approx(16000, abs=1)
    assert _dominant_hz(wav, 16000) == pytest.approx(440.0, abs=1.5)
    assert wav.shape[0] == -(-rate * 16000 // rate)  # ceil(T * 16000 / rate) with T = rate


def test_stereo_is_averaged_to_mono(tmp_path: Path) -> None:
    left, right = _tone(44100, 0.5, 300.0), _tone(44100, 0.5, 1200.0)
    soundfile.write(tmp_path / "s.wav", np.stack([left, right], axis=1), 44100, subtype="FLOAT")
    wav = read_wav(tmp_path / "s.wav")
    reference = resample_poly((left + right) / 2, 160, 441)
    assert np.allclose(wav.numpy(), reference, atol=1e-5)


def test_another_target_rate(tmp_path: Path) -> None:
    soundfile.write(tmp_path / "a.wav", _tone(16000, 1.0, 200.0), 16000, subtype="FLOAT")
    assert read_wav(tmp_path / "a.wav", sample_rate=8000).shape == (8000,)


def test_bad_wavs_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.wav"):
        read_wav(tmp_path / "missing.wav")
    (tmp_path / "empty.wav").write_bytes(wav_bytes(np.zeros(0, np.int16), 16000))
    with pytest.raises(WavError, match="empty.wav.*empty"):
        read_wav(tmp_path / "empty.wav")
    (tmp_path / "zero.wav").write_bytes(b"")
    with pytest.raises(WavError, match="zero.wav"):
        read_wav(tmp_path / "zero.wav")
    (tmp_path / "junk.wav").write_bytes(b"RIFF this is not audio at all" * 10)
    with pytest.raises(WavError, match="junk.wav.*unreadable"):
        read_wav(tmp_path / "junk.wav")
    # The header-only reader (caption durations) reports the same way.
    with pytest.raises(FileNotFoundError, match="missing.wav"):
        wav_seconds(tmp_path / "missing.wav")
    with pytest.raises(WavError, match="junk.wav.*unreadable"):
        wav_seconds(tmp_path / "junk.wav")


# ---------------------------------------------------------------- SpokenCOCO splits and captions


def _mini_corpus(root: Path, dim: int = 8) -> dict:
    """Two images, three captions, written by hand in the SpokenCOCO layout."""
    rng = np.random.default_rng(1)
    data = []
    for i, count in enumerate((2, 1)):
        key = f"COCO_val2014_{i:012d}"
        write_npz(
            root / "regions" / f"{key}.npz",
            feats=rng.normal(size=(36, dim)).astype(np.float32),
            boxes=rng.uniform(0, 1, size=(36, 4)).astype(np.float32),
        )
        captions = []
        for k in range(count):
            wav = f"wavs/val/{i}/{key}-{k}.wav"
            samples = rng.normal(0, 2000, 1600 * (k + i + 1)).astype(np.int16)
            (root / wav).parent.mkdir(parents=True, exist_ok=True)
            (root / wav).write_bytes(wav_bytes(samples, 16000))
            captions.append(
                {"wav": wav, "text": f"caption {k}", "speaker": f"s{k}", "uttid": f"{key}-{k}"}
            )
        data.append({"image": f"val2014/{key}.jpg", "captions": captions})
    document = {"data": data}
    (root / "SpokenCOCO_val.json").write_text(json.dumps(document))
    return document


def test_load_split_resolves_paths(tmp_path: Path) -> None:
    document = _mini_corpus(tmp_path)
    entries = load_split(tmp_path, "val")
    assert [e["key"] for e in entries] == ["COCO_val2014_000000000000", "COCO_val2014_000000000001"]
    first = entries[0]["captions"][1]
    assert first["wav"] == tmp_path.resolve() / document["data"][0]["captions"][1]["wav"]
    assert first["wav"].is_file() and entries[0]["image"].is_absolute()
    assert {k: first[k] for k in ("text", "speaker", "uttid")} == {
        k: document["data"][0]["captions"][1][k] for k in ("text", "speaker", "uttid")
    }


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: d["data"][1].pop("image"), "entry 1.*'image'"),
        (lambda d: d["data"][1]["captions"][0].pop("wav"), "entry 1, caption 0.*'wav'"),
        (lambda d: d["data"][0]["captions"].clear(), "entry 0.*captions"),
        (lambda d: d["data"][0]["captions"][1].update(text=3), "entry 0, caption 1.*'text'"),
        (lambda d: d["data"].insert(1, "not an entry"), "entry 1: expected an object"),
        (lambda d: d.pop("data"), "'data' list"),
    ],
)
def test_malformed_entries_name_the_file_and_entry(tmp_path: Path, damage, message: str) -> None:
    document = _mini_corpus(tmp_path)
    damage(document)
    (tmp_path / "SpokenCOCO_val.json").write_text(json.dumps(document))
    with pytest.raises(SpokenCocoError, match=f"SpokenCOCO_val.json: .*{message}"):
        load_split(tmp_path, "val")


def test_invalid_json_and_missing_split(tmp_path: Path) -> None:
    (tmp_path / "spokencoco_train.json").write_text('{"data": [\n{"image": }')
    with pytest.raises(SpokenCocoError, match="spokencoco_train.json: invalid JSON at line 2"):
        load_split(tmp_path, "train")
    with pytest.raises(FileNotFoundError, match="spokencoco_test.json"):
        load_split(tmp_path, "test")


def test_caption_dataset_and_collate(tmp_path: Path) -> None:
    _mini_corpus(tmp_path)
    dataset = CaptionDataset(tmp_path, "val")
    assert len(dataset) == 3 and dataset.caption_image_index.tolist() == [0, 0, 1]
    items = [dataset[i] for i in range(3)]
    assert [item["image_index"] for item in items] == [0, 0, 1]
    assert [item["wav"].shape[0] for item in items] == [1600, 3200, 3200]
    assert dataset.durations() == [0.1, 0.2, 0.2]  # from the headers, for length-bucketed batches
    batch = collate_captions(items)
    assert batch["wav"].shape == (3, 3200) and batch["wav_lengths"].tolist() == [1600, 3200, 3200]
    assert torch.equal(batch["wav"][0, :1600], items[0]["wav"]) and not batch["wav"][0, 1600:].any()
    assert batch["feats"].shape == (3, 36, 8) and batch["boxes"].shape == (3, 36, 4)
    assert batch["image_index"].dtype == torch.long and batch["uttid"][2] == items[2]["uttid"]
    feats, boxes = dataset.image_regions()
    assert feats.shape == (2, 36, 8) and torch.equal(feats[1], items[2]["feats"])


def test_a_missing_wav_names_the_split_file_and_entry(tmp_path: Path) -> None:
    document = _mini_corpus(tmp_path)
    (tmp_path / document["data"][1]["captions"][0]["wav"]).unlink()
    dataset = CaptionDataset(tmp_path, "val")
    with pytest.raises(
        FileNotFoundError, match="SpokenCOCO_val.json: entry 1, caption 0: .*-0.wav"
    ):
        dataset[2]
    with pytest.raises(
        FileNotFoundError, match="SpokenCOCO_val.json: entry 1, caption 0: .*-0.wav"
    ):
        dataset.durations()


def test_caption_dataset_on_the_embedded_corpus(small_corpus: Path) -> None:
    dataset = CaptionDataset(small_corpus, "test")
    item = dataset[7]
    assert item["wav"].dim() == 1 and item["image_key"] == dataset.image_keys[item["image_index"]]
    assert item["feats"].shape[0] == 36 and item["boxes"].shape == (36, 4)
    assert 1.0 < item["wav"].shape[0] / 16000 < 6.0


# ---------------------------------------------------------------- region features


def test_corpus_regions_of_the_wrong_shape_name_the_file(tmp_path: Path) -> None:
    arrays = {
        "good": {"feats": np.zeros((36, 8)), "boxes": np.zeros((36, 4))},
        "short": {"feats": np.zeros((35, 8)), "boxes": np.zeros((35, 4))},
        "wide": {"feats": np.zeros((36, 9)), "boxes": np.zeros((36, 4))},
        "boxes": {"feats": np.zeros((36, 8)), "boxes": np.full((36, 4), 2.0)},
        "nofeats": {"boxes": np.zeros((36, 4))},
    }
    for key, members in arrays.items():
        typed = {name: array.astype(np.float32) for name, array in members.items()}
        write_npz(tmp_path / "regions" / f"{key}.npz", **typed)
    regions = RegionFeatures.from_corpus(tmp_path)
    assert len(regions) == 5 and regions["good"][0].shape == (36, 8) and regions.dim == 8
    for key, message in [
        ("short", r"\[36, D\]"),
        ("wide", "dimension 9"),
        ("boxes", r"\[0, 1\]"),
        ("nofeats", "feats"),
    ]:
        with pytest.raises(RegionError, match=f"{key}.npz: .*{message}"):
            regions[key]
    with pytest.raises(KeyError):
        regions["absent"]


def _lxmert_row(
    image_id: str, height: int, width: int, feats: np.ndarray, boxes: np.ndarray
) -> str:
    def b64(array: np.ndarray) -> str:
        return base64.b64encode(np.ascontiguousarray(array, dtype=np.float32).tobytes()).decode()

    n = feats.shape[0]
    fields = [image_id, str(height), str(width), b64(np.zeros(n)), b64(np.ones(n)), b64(np.zeros(n)),
              b64(np.ones(n)), str(n), b64(boxes), b64(feats)]  # fmt: skip
    return "\t".join(fields)


def test_lxmert_tsv_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    rows, expected = [], {}
    for i, (height, width) in enumerate([(480, 640), (500, 375)]):
        feats = rng.normal(size=(36, 16)).astype(np.float32)
        x1, y1 = rng.uniform(0, width / 2, 36), rng.uniform(0, height / 2, 36)
        boxes = np.stack([x1, y1, x1 + width / 3, y1 + height / 3], axis=1).astype(np.float32)
        key = f"COCO_val2014_{i:012d}"
        rows.append(_lxmert_row(key, height, width, feats, boxes))
        expected[key] = (feats, boxes / np.array([width, height, width, height], np.float32))
    (tmp_path / "val_obj36.tsv").write_text("\n".join(rows) + "\n")
    regions = RegionFeatures.from_lxmert_tsv(tmp_path / "val_obj36.tsv")
    assert sorted(regions) == sorted(expected)
    for key, (feats, boxes) in expected.items():
        got_feats, got_boxes = regions[key]
        assert got_feats.dtype == torch.float32 and torch.equal(got_feats, torch.from_numpy(feats))
        assert np.allclose(got_boxes.numpy(), boxes, atol=1e-6)
        assert (got_boxes >= 0).all() and (got_boxes <= 1).all()


def test_bad_lxmert_rows_name_the_file_and_line(tmp_path: Path) -> None:
    feats, boxes = np.zeros((36, 4), np.float32), np.ones((36, 4), np.float32)
    good = _lxmert_row("a", 10, 10, feats, boxes)
    fields = good.split("\t")
    rows = [
        good,
        "\t".join(fields[:9]).replace("a", "b", 1),  # a field missing
        _lxmert_row(
            "c", 10, 10, np.zeros((20, 4), np.float32), np.ones((20, 4), np.float32)
        ),  # 20 boxes
        "\t".join(["d", "10", "ten", *fields[3:]]),
        "\t".join(["e", *fields[1:9], "not base64!"]),
        "\t".join(["f", *fields[1:8], fields[8][:-8], fields[9]]),  # boxes truncated
    ]
    path = tmp_path / "bad.tsv"
    path.write_text("\n".join(rows) + "\n")
    regions = RegionFeatures.from_lxmert_tsv(path)
    assert regions["a"][0].shape == (36, 4)
    for key, line, message in [("b", 2, "expected 10 fields"), ("c", 3, r"\[36, D\]"), ("d", 4, "integers"),
                               ("e", 5, "features is not base64"), ("f", 6, "boxes")]:  # fmt: skip
        with pytest.raises(RegionError, match=f"bad.tsv:{line}: .*{message}"):
            regions[key]


def test_boxes_outside_the_image_name_the_file_and_line(tmp_path: Path) -> None:
    # docs/data.md: boxes outside the image are an error, not clipped; so are swapped img_h/img_w
    # (a 640 x 480 image's boxes read as a 480 x 640 one's reach past its right edge).
    feats = np.zeros((36, 4), np.float32)
    boxes = np.tile(np.array([10, 10, 600, 400], np.float32), (36, 1))
    wide = boxes.copy()
    wide[7] = [0, 0, 700, 100]
    rows = [
        _lxmert_row("a", 480, 640, feats, boxes),
        _lxmert_row("b", 640, 480, feats, boxes),  # img_h and img_w swapped
        _lxmert_row("c", 480, 640, feats, wide),
        _lxmert_row("d", 480, 640, feats, boxes + np.float32(0.5)),  # within a pixel of the edge
    ]
    path = tmp_path / "boxes.tsv"
    path.write_text("\n".join(rows) + "\n")
    regions = RegionFeatures.from_lxmert_tsv(path)
    assert regions["a"][1].max() <= 1 and regions["d"][1].max() <= 1
    with pytest.raises(RegionError, match=r"boxes.tsv:2: box 0 .* 480 x 640 .*swapped"):
        regions["b"]
    with pytest.raises(RegionError, match=r"boxes.tsv:3: box 7 \(0, 0, 700, 100\)"):
        regions["c"]


def test_hdf5_boxes_outside_the_image_are_named(tmp_path: Path) -> None:
    import h5py

    path = _hdf5(tmp_path)
    with h5py.File(path, "a") as handle:
        handle["img_w"][2] = 3  # the 5-pixel-wide boxes no longer fit
    with pytest.raises(RegionError, match=r"image 'b' \(row 2 .*box 0 .*3 x 20"):
        open_regions(path)["b"]


# ---------------------------------------------------------------- alignments


def test_alignment_round_trip_and_errors(tmp_path: Path) -> None:
    path = write_alignment(tmp_path / "u.txt", [0, 1000, 1001, 16000], ["SIL", "a", "b"])
    assert read_alignment(path) == [
        (0.0, 0.0625, "SIL"),
        (0.0625, 0.0625625, "a"),
        (0.0625625, 1.0, "b"),
    ]
    text = path.read_text().splitlines()
    for number, broken, message in [
        (3, text[:2] + ["0.0625000\t0.0600000\ta"] + text[3:], "not before"),
        (4, text[:3] + ["0.0700000\t1.0000000\tb"], "does not continue"),
        (2, text[:1] + ["0.1000000\t0.0625000\tSIL"] + text[2:], "not before"),
        (3, text[:2] + ["0.0625000 0.0625625 a"] + text[3:], "3 tab-separated"),
    ]:
        (tmp_path / "bad.txt").write_text("\n".join(broken) + "\n")
        with pytest.raises(AlignmentError, match=f"bad.txt:{number}: .*{message}"):
            read_alignment(tmp_path / "bad.txt")
    with pytest.raises(ValueError, match="bounds"):
        write_alignment(tmp_path / "x.txt", [0, 5], ["a", "b"])


# ---------------------------------------------------------------- one split resolver, both schemas


def _unrolled(document: dict) -> dict:
    """The grouped document as a Karpathy unrolled one: one caption per entry, no speaker/uttid."""
    return {"data": [{"image": e["image"], "caption": {"wav": c["wav"], "text": c["text"]}}
                     for e in document["data"] for c in e["captions"]]}  # fmt: skip


def test_split_names_resolve_by_documented_precedence(tmp_path: Path) -> None:
    from training.data import split_path
    from training.data.spokencoco import SplitPrecedenceWarning

    document = _mini_corpus(tmp_path)  # SpokenCOCO_val.json: the distributed per-image file
    assert split_path(tmp_path, "val").name == "SpokenCOCO_val.json"
    (tmp_path / "SpokenCOCO_val_unrolled_karpathy.json").write_text(json.dumps(_unrolled(document)))
    with pytest.warns(
        SplitPrecedenceWarning,
        match="'val' is served by SpokenCOCO_val_unrolled_karpathy.json .*also present: SpokenCOCO_val.json",
    ):
        assert split_path(tmp_path, "val").name == "SpokenCOCO_val_unrolled_karpathy.json"
    (tmp_path / "spokencoco_val.json").write_text(json.dumps(document))
    with pytest.warns(
        SplitPrecedenceWarning,
        match="also present: SpokenCOCO_val_unrolled_karpathy.json, SpokenCOCO_val.json",
    ):
        assert split_path(tmp_path, "val").name == "spokencoco_val.json"
    assert split_path(tmp_path, "SpokenCOCO_val.json").name == "SpokenCOCO_val.json"
    with pytest.raises(
        FileNotFoundError,
        match="'test' .*spokencoco_test.json, SpokenCOCO_test_unrolled_karpathy.json, SpokenCOCO_test.json",
    ):
        split_path(tmp_path, "test")


def test_unrolled_karpathy_entries_regroup_per_image(tmp_path: Path) -> None:
    document = _mini_corpus(tmp_path)
    grouped = load_split(tmp_path, "val")
    (tmp_path / "SpokenCOCO_val.json").unlink()
    (tmp_path / "SpokenCOCO_val_unrolled_karpathy.json").write_text(json.dumps(_unrolled(document)))
    unrolled = load_split(tmp_path, "val")
    assert [e["key"] for e in unrolled] == [e["key"] for e in grouped]
    assert [[c["wav"] for c in e["captions"]] for e in unrolled] == [
        [c["wav"] for c in e["captions"]] for e in grouped
    ]
    assert (
        unrolled[0]["captions"][1]["uttid"] == Path(document["data"][0]["captions"][1]["wav"]).stem
    )
    assert [c["entry"] for e in unrolled for c in e["captions"]] == [0, 1, 2]
    dataset = CaptionDataset(tmp_path, "val")
    assert len(dataset) == 3 and dataset.caption_image_index.tolist() == [0, 0, 1]


def test_an_entry_of_neither_schema_names_file_and_entry(tmp_path: Path) -> None:
    document = _unrolled(_mini_corpus(tmp_path))
    document["data"][2] = {"image": "val2014/x.jpg", "audio": "x.wav"}
    (tmp_path / "SpokenCOCO_val.json").unlink()
    (tmp_path / "SpokenCOCO_val_unrolled_karpathy.json").write_text(json.dumps(document))
    with pytest.raises(
        SpokenCocoError,
        match="unrolled_karpathy.json: entry 2: expected an object with image and captions .* or image and caption",
    ):
        load_split(tmp_path, "val")


def test_a_caption_whose_image_has_no_regions_names_both(tmp_path: Path) -> None:
    _mini_corpus(tmp_path)
    (tmp_path / "regions" / "COCO_val2014_000000000001.npz").unlink()
    with pytest.raises(
        RegionError,
        match=r"SpokenCOCO_val.json: entry 1 \(image COCO_val2014_000000000001.jpg\): no region features for 'COCO_val2014_000000000001' in .*regions",
    ):
        CaptionDataset(tmp_path, "val")


def test_captions_at_another_rate_are_refused_unless_resampled(tmp_path: Path) -> None:
    document = _mini_corpus(tmp_path)
    wav = tmp_path / document["data"][1]["captions"][0]["wav"]
    soundfile.write(wav, _tone(8000, 0.2, 300.0), 8000, subtype="PCM_16")
    with pytest.raises(
        WavError, match=r"entry 1, caption 0: .*-0.wav: sampled at 8000 Hz.*resample=True"
    ):
        CaptionDataset(tmp_path, "val")[2]
    assert CaptionDataset(tmp_path, "val", resample=True)[2]["wav"].shape == (3200,)


def test_an_empty_wav_in_recall_is_named(tmp_path: Path) -> None:
    from probes import recall
    from training import SSLVGS, preset

    document = _mini_corpus(tmp_path)
    wav = tmp_path / document["data"][0]["captions"][1]["wav"]
    wav.write_bytes(wav_bytes(np.zeros(0, np.int16), 16000))
    model = SSLVGS(preset("tiny", region_dim=8)[0])
    with pytest.raises(
        WavError, match=r"SpokenCOCO_val.json: entry 0, caption 1: .*-1.wav: empty audio"
    ):
        recall(model, "val", corpus=tmp_path, progress=False)
    wav.write_bytes(b"")
    with pytest.raises(
        WavError, match=r"SpokenCOCO_val.json: entry 0, caption 1: .*-1.wav: unreadable"
    ):
        recall(model, "val", corpus=tmp_path, progress=False)
    # One sample (or any fewer than the model's receptive field): no frame of its own.
    wav.write_bytes(wav_bytes(np.ones(1, np.int16), 16000))
    with pytest.raises(WavError, match=r"caption 1: .*-1.wav: 1 samples .*fewer than the 400"):
        recall(model, "val", corpus=tmp_path, progress=False)


def test_recall_refuses_a_non_finite_embedding_naming_the_image(tmp_path: Path) -> None:
    # Finite but huge region features (3e38) overflow to an all-NaN image embedding, which ranking
    # would place anywhere: an error naming the image, not a recall.
    from probes import recall
    from training import SSLVGS, preset

    _mini_corpus(tmp_path)
    key = "COCO_val2014_000000000001"
    with np.load(tmp_path / "regions" / f"{key}.npz") as data:
        boxes = data["boxes"]
    write_npz(
        tmp_path / "regions" / f"{key}.npz", feats=np.full((36, 8), 3e38, np.float32), boxes=boxes
    )
    model = SSLVGS(preset("tiny", region_dim=8)[0])
    with pytest.raises(ValueError, match=rf"image {key}: its embedding holds NaN or Inf"):
        recall(model, "val", corpus=tmp_path, progress=False)


# ---------------------------------------------------------------- region layouts: errors, bounds


def test_tsv_feature_length_and_repeated_images_are_named(tmp_path: Path) -> None:
    feats, boxes = np.zeros((36, 4), np.float32), np.ones((36, 4), np.float32)
    fields = _lxmert_row("a", 10, 10, feats, boxes).split("\t")
    short = base64.b64encode(np.zeros(36 * 4 - 1, np.float32).tobytes()).decode()
    (tmp_path / "one.tsv").write_text("\t".join([*fields[:9], short]) + "\n")
    with pytest.raises(
        RegionError, match="one.tsv:1: field features has 572 bytes, not 36 float32 rows"
    ):
        open_regions(tmp_path / "one.tsv")["a"]
    (tmp_path / "two.tsv").write_text("\t".join(fields) + "\n")
    (tmp_path / "three.tsv").write_text("\n" + "\t".join(fields) + "\n")
    with pytest.raises(
        RegionError, match="three.tsv:2: image 'a' again \\(first at .*two.tsv:1\\)"
    ):
        open_regions([tmp_path / "two.tsv", tmp_path / "three.tsv"])


def _hdf5(folder: Path, names=("img_h", "img_w", "boxes", "features"), rows: int = 3) -> Path:
    import h5py

    folder.mkdir(parents=True, exist_ok=True)
    arrays = {"img_h": np.full(rows, 20), "img_w": np.full(rows, 10),
              "boxes": np.tile(np.array([0, 0, 5, 10], np.float32), (rows, 36, 1)),
              "features": np.arange(rows * 36 * 6, dtype=np.float32).reshape(rows, 36, 6)}  # fmt: skip
    path = folder / "SpokenCOCO_val_imgfeat.hdf5"
    with h5py.File(path, "w") as handle:
        for name in names:
            handle[name] = arrays[name]
    (folder / "SpokenCOCO_val_imgid2idex.json").write_text(json.dumps({"a": 0, "b": 2}))
    return path


def test_hdf5_layout_with_its_index_and_box_order(tmp_path: Path) -> None:
    path = _hdf5(tmp_path / "coco_img_feat")
    regions = open_regions(path)
    assert sorted(regions) == ["a", "b"] and regions.dim == 6
    feats, boxes = regions["b"]
    assert torch.equal(feats[0], torch.arange(72 * 6, 72 * 6 + 6, dtype=torch.float32))
    assert torch.equal(boxes[0], torch.tensor([0.0, 0.0, 0.5, 0.5]))
    order = {"a": np.arange(36)[::-1], "b": np.arange(36)}  # numpy arrays, as FaST-VGS pickles them
    with open(tmp_path / "coco_img_feat" / "SpokenCOCO_val_imgid2ordered_indices.pkl", "wb") as f:
        pickle.dump(order, f)
    assert torch.equal(open_regions(path)["a"][0][0], regions["a"][0][35])


def test_hdf5_missing_a_dataset_is_named(tmp_path: Path) -> None:
    path = _hdf5(tmp_path, names=("img_h", "img_w", "features"))
    with pytest.raises(RegionError, match=r"SpokenCOCO_val_imgfeat.hdf5: missing dataset 'boxes'"):
        open_regions(path)


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {_Evil.marker}",))


def test_a_box_order_pickle_never_runs_code(tmp_path: Path) -> None:
    path = _hdf5(tmp_path)
    _Evil.marker = tmp_path / "ran"
    with open(tmp_path / "SpokenCOCO_val_imgid2ordered_indices.pkl", "wb") as f:
        pickle.dump({"a": _Evil()}, f)
    with pytest.raises(
        RegionError,
        match=r"ordered_indices.pkl: not read \(global posix.system refused\).*convert it to JSON as SpokenCOCO_val_imgid2ordered_indices.json",
    ):
        open_regions(path)
    assert not _Evil.marker.exists()
    (tmp_path / "SpokenCOCO_val_imgid2ordered_indices.json").write_text(
        json.dumps({"a": list(range(36))[::-1], "b": list(range(36))})
    )  # the converted form is read instead
    assert open_regions(path)["a"][0].shape == (36, 6)


def test_only_a_bounded_number_of_images_is_kept(tmp_path: Path) -> None:
    rows = [_lxmert_row(f"i{k}", 10, 10, np.full((36, 4), k, np.float32), np.ones((36, 4), np.float32))
            for k in range(20)]  # fmt: skip
    (tmp_path / "r.tsv").write_text("\n".join(rows) + "\n")
    regions = open_regions(tmp_path / "r.tsv", cache_size=4)
    for key in regions:
        assert float(regions[key][0][0, 0]) == float(key[1:])
    assert len(regions._cache) == 4 and list(regions._cache) == ["i16", "i17", "i18", "i19"]


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from([(22050, 16000), (16000, 8000), (8000, 16000), (44100, 16000)]),
    st.sampled_from([np.float32, np.float64, np.int16]),
    st.integers(1, 3000),
    st.integers(0, 2**32 - 1),
)
def test_resample_is_scipys_resample_poly_bit_for_bit(rates, dtype, length, seed):
    # The filter is designed once per ratio; the samples must be those of scipy's own call.
    import math

    from training.data.audio import resample

    source, target = rates
    samples = (np.random.default_rng(seed).standard_normal(length) * 1000).astype(dtype)
    g = math.gcd(source, target)
    expected = resample_poly(samples, target // g, source // g, axis=0)
    got = resample(samples, source, target)
    assert got.dtype == expected.dtype and np.array_equal(got, expected)
