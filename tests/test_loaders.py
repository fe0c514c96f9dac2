"""Loaders: wavs, SpokenCOCO splits, region features (corpus and LXMERT TSV), captions, alignments."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
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
