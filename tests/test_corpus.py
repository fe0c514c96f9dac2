"""The embedded corpus: reproducible, resumable, and internally consistent (audio, phones, items)."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import training.corpus.speech as speech_module
from training.corpus import build_corpus, split_sizes
from training.corpus.espeak import SILENCE
from training.data import load_split, read_alignment, read_items
from training.data.alignments import seconds_text

TINY = 3  # images: the smallest corpus with every split


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _wav_samples(path: Path) -> int:
    with wave.open(str(path)) as wav:
        assert wav.getframerate() == 16000 and wav.getnchannels() == 1 and wav.getsampwidth() == 2
        return wav.getnframes()


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_corpus(tmp_path_factory.mktemp("tiny") / "c", images=TINY, seed=3, progress=False)


def test_same_seed_gives_the_same_bytes(tiny_corpus: Path, tmp_path: Path) -> None:
    again = build_corpus(tmp_path / "again", images=TINY, seed=3, progress=False)
    first, second = _tree(tiny_corpus), _tree(again)
    assert sorted(first) == sorted(second)
    assert [name for name in first if first[name] != second[name]] == []


def test_another_seed_gives_another_corpus(tiny_corpus: Path, tmp_path: Path) -> None:
    other = build_corpus(tmp_path / "other", images=TINY, seed=4, progress=False)
    name = "spokencoco_train.json"
    assert (other / name).read_bytes() != (tiny_corpus / name).read_bytes()


def test_an_interrupted_build_resumes_to_the_same_bytes(
    tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_speak, calls = speech_module.speak, []

    def speak_then_die(*args, **kwargs):
        if len(calls) == 7:
            raise KeyboardInterrupt
        calls.append(args)
        return real_speak(*args, **kwargs)

    monkeypatch.setattr(speech_module, "speak", speak_then_die)
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):  # in this process: the patch reaches no worker
        build_corpus(out, images=TINY, seed=3, progress=False, workers=1)
    assert not (out / "manifest.json").exists()
    assert len(list(out.glob("wavs/*/*.wav"))) == 7
    monkeypatch.setattr(speech_module, "speak", real_speak)
    (out / "wavs" / "train" / ".scene_00000_4.wav.x1y2.tmp").write_bytes(b"half a wav")  # a kill -9
    build_corpus(out, images=TINY, seed=3, progress=False)
    assert _tree(out) == _tree(tiny_corpus)


def test_lost_files_are_rebuilt_identically(tiny_corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "damaged"
    build_corpus(out, images=TINY, seed=3, progress=False)
    for lost in [
        "images/scene_00001.png",
        "regions/scene_00002.npz",
        "wavs/test/scene_00002_3.wav",
        "alignments/train/scene_00000_1.txt",
        "abx/read/wavs/read_1_004.wav",
        "abx/captions/items.item",
        "spokencoco_val.json",
        "manifest.json",
    ]:
        (out / lost).unlink()
    build_corpus(out, images=TINY, seed=3, progress=False)
    assert _tree(out) == _tree(tiny_corpus)


def test_a_folder_with_other_settings_or_other_files_is_refused(
    tiny_corpus: Path, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="built with"):
        build_corpus(tiny_corpus, images=TINY + 1, seed=3, progress=False)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        build_corpus(tmp_path, images=TINY, progress=False)


def test_split_sizes_cover_every_image() -> None:
    for images in (3, 7, 60, 300, 1001):
        sizes = split_sizes(images)
        assert sum(sizes.values()) == images and min(sizes.values()) >= 1
    assert split_sizes(300) == {"train": 240, "val": 10, "test": 50}
    with pytest.raises(ValueError, match="at least 3"):
        split_sizes(2)
    # a larger test split leaves train and val as `images` makes them
    assert split_sizes(300, test_images=200) == {"train": 240, "val": 10, "test": 200}
    with pytest.raises(ValueError, match="test_images"):
        split_sizes(300, test_images=0)


def test_more_test_images_keep_the_training_scenes() -> None:
    from training.corpus import plan_corpus

    scenes, _, _ = plan_corpus(30, 2, 5)
    more, _, _ = plan_corpus(30, 2, 5, test_images=12)
    assert [s.split for s in more].count("test") == 12
    kept = [s for s in scenes if s.split != "test"]
    assert [(s.key, s.objects, s.captions) for s in kept] == [
        (s.key, s.objects, s.captions) for s in more[: len(kept)]
    ]


def test_manifest_counts_match_the_files(small_corpus: Path) -> None:
    manifest = json.loads((small_corpus / "manifest.json").read_text())
    for split in ("train", "val", "test"):
        entries = load_split(small_corpus, split)
        assert manifest["counts"]["images"][split] == len(entries)
        assert manifest["counts"]["captions"][split] == sum(len(e["captions"]) for e in entries)
        assert len(list((small_corpus / "wavs" / split).glob("*.wav"))) == sum(
            len(e["captions"]) for e in entries
        )
    assert manifest["settings"]["images"] == len(list((small_corpus / "images").glob("*.png")))
    for name in ("captions", "read"):
        items = read_items(small_corpus / "abx" / name / "items.item")
        assert manifest["abx"][name]["items"] == len(items)
        assert manifest["abx"][name]["files"] == len(
            list((small_corpus / "abx" / name / "wavs").glob("*.wav"))
        )


def _utterances(root: Path) -> list[tuple[str, Path, Path, str, str]]:
    """(split, wav, alignment, text, speaker) of every caption and read sentence."""
    rows = []
    for split in ("train", "val", "test"):
        for entry in load_split(root, split):
            for c in entry["captions"]:
                rows.append(
                    (
                        split,
                        c["wav"],
                        root / "alignments" / split / f"{c['uttid']}.txt",
                        c["text"],
                        c["speaker"],
                    )
                )
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["counts"]["captions"]["read"] == len(
        list((root / "alignments" / "read").glob("*.txt"))
    )
    return rows


def test_phones_tile_each_utterance_and_end_with_its_wav(small_corpus: Path) -> None:
    for _split, wav, alignment, _text, _speaker in _utterances(small_corpus):
        phones = read_alignment(alignment)  # checks first onset 0 and contiguity
        last = alignment.read_text().splitlines()[-1].split("\t")
        assert last[1] == seconds_text(_wav_samples(wav))
        assert all(0 <= onset < offset for onset, offset, _ in phones)
        labels = [p for _, _, p in phones]
        assert all(a != b or a != SILENCE for a, b in zip(labels, labels[1:], strict=False))
        assert not any(mark in p for p in labels for mark in "ˈˌ")  # stress stripped


def test_phones_are_what_espeak_reports_for_the_text(small_corpus: Path) -> None:
    from training.corpus.espeak import text_to_phones

    manifest = json.loads((small_corpus / "manifest.json").read_text())
    voices = {name: s["voice"] for name, s in manifest["speakers"].items()}
    for _split, _wav, alignment, text, speaker in _utterances(small_corpus)[::3]:
        spoken = [p for _, _, p in read_alignment(alignment) if p != SILENCE]
        assert spoken == text_to_phones(text, voices[speaker]), (alignment, text)


def test_speakers_differ_within_an_image_and_between_train_and_held_out(small_corpus: Path) -> None:
    speakers = {}
    for split in ("train", "val", "test"):
        speakers[split] = set()
        for entry in load_split(small_corpus, split):
            names = [c["speaker"] for c in entry["captions"]]
            assert len(set(names)) == len(names) == 5
            speakers[split] |= set(names)
    assert not speakers["train"] & (speakers["val"] | speakers["test"])
    read = set(read_items(small_corpus / "abx" / "read" / "items.item")["speaker"])
    assert not read & set().union(*speakers.values())

    def parts(name: str) -> tuple[str, str]:
        language, variant = name.split("+")
        return language, variant

    train_languages = {parts(s)[0] for s in speakers["train"]}
    train_variants = {parts(s)[1] for s in speakers["train"]}
    held_out_variants = {parts(s)[1] for s in speakers["val"] | speakers["test"]}
    assert not train_variants & held_out_variants
    assert all(
        parts(s)[0] not in train_languages and parts(s)[1] not in train_variants for s in read
    )


@pytest.mark.parametrize("name", ["captions", "read"])
def test_abx_items_lie_inside_their_files_and_cover_phones(small_corpus: Path, name: str) -> None:
    folder = small_corpus / "abx" / name
    items = read_items(folder / "items.item")
    durations = {p.stem: _wav_samples(p) / 16000 for p in (folder / "wavs").glob("*.wav")}
    assert set(items["file"]) == set(durations)
    assert (items["onset"] >= 0).all() and (items["onset"] < items["offset"]).all()
    assert (items["offset"] <= items["file"].map(durations)).all()
    assert SILENCE not in set(items["phone"])
    # every item holds the centre of a 20 ms frame: the default 50 Hz slicing is never empty
    start = np.ceil(50 * items["onset"] - 0.5)
    end = np.floor(50 * items["offset"] - 0.5) + 1
    assert (end > start).all()
    # items are alignment phones with their neighbours as context
    split = "test" if name == "captions" else "read"
    first = items["file"].iloc[0]
    phones = read_alignment(small_corpus / "alignments" / split / f"{first}.txt")
    labels = [p for _, _, p in phones]
    mine = items[items["file"] == first]
    for _, row in mine.iterrows():
        index = next(i for i, (on, _, _) in enumerate(phones) if on == row["onset"])
        assert row["phone"] == labels[index]
        assert row["prev"] == (labels[index - 1] if index else SILENCE)
        assert row["next"] == (labels[index + 1] if index + 1 < len(labels) else SILENCE)


def test_captions_abx_set_is_the_test_captions(small_corpus: Path) -> None:
    test = {c["uttid"]: c["wav"] for e in load_split(small_corpus, "test") for c in e["captions"]}
    wavs = {p.stem: p for p in (small_corpus / "abx" / "captions" / "wavs").glob("*.wav")}
    assert set(wavs) == set(test)
    assert all(wavs[u].read_bytes() == test[u].read_bytes() for u in list(test)[:5])


def test_images_and_regions(small_corpus: Path) -> None:
    manifest = json.loads((small_corpus / "manifest.json").read_text())
    dim = manifest["settings"]["region_dim"]
    for png in sorted((small_corpus / "images").glob("*.png"))[:10]:
        with Image.open(png) as image:
            assert image.size == (224, 224) and image.mode == "RGB"
        with np.load(small_corpus / "regions" / f"{png.stem}.npz") as data:
            feats, boxes = data["feats"], data["boxes"]
        assert feats.shape == (36, dim) and feats.dtype == np.float32
        assert boxes.shape == (36, 4) and boxes.dtype == np.float32
        assert (boxes >= 0).all() and (boxes <= 1).all()
        assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()


def test_region_features_carry_the_attributes(small_corpus: Path) -> None:
    """Two object regions with the same shape and colour are closer than ones that share neither."""
    from training.corpus.scenes import RegionEncoder, SceneObject

    encoder = RegionEncoder(64, seed=0)
    rng = np.random.default_rng(0)
    box = (0.1, 0.1, 0.3, 0.3)
    a, _ = encoder([SceneObject("circle", "red", "small", box)], rng)
    b, _ = encoder([SceneObject("circle", "red", "small", (0.5, 0.5, 0.7, 0.7))], rng)
    c, _ = encoder([SceneObject("star", "blue", "large", box)], rng)
    assert np.linalg.norm(a[0] - b[0]) < np.linalg.norm(a[0] - c[0])
