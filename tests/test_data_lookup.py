"""One lookup for audio and features by stem, paths kept inside their root, no pickled code run, and
every bad input named: ambiguous stems, missing stems, empty or unpicklable feature files, item files."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from probes.abx_engine.ragged import FeatureFileError, load_feature_dir
from probes.sources import abx_set, as_source
from training.data import AmbiguousFileError, ItemFileError, SpokenCocoError, read_items

HEADER = "#file onset offset #phone prev-phone next-phone speaker"


def _tone(path: Path, seconds: float = 0.3, rate: int = 16000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(rate * seconds)) / rate
    fmt = "FLAC" if path.suffix == ".flac" else "WAV"
    soundfile.write(path, 0.3 * np.sin(2 * np.pi * 220 * t), rate, format=fmt, subtype="PCM_16")
    return path


def _items(path: Path, files: list[str]) -> Path:
    lines = [HEADER] + [f"{f} 0.05 0.15 a b c s1" for f in files]
    path.write_text("\n".join(lines) + "\n")
    return path


# ---------------------------------------------------------------- audio by stem


def test_item_files_find_librispeech_flac_at_any_depth(tmp_path: Path) -> None:
    root = tmp_path / "LibriSpeech" / "dev-clean"
    flac = _tone(root / "84" / "121123" / "84-121123-0000.flac")
    wav = _tone(root / "flat.wav")
    items = _items(tmp_path / "dev.item", ["84-121123-0000", "flat", "84-121123-0000"])
    source = abx_set(items, root)
    assert [u.id for u in source.utterances] == ["84-121123-0000", "flat"]
    assert [u.wav for u in source.utterances] == [flac.resolve(), wav.resolve()]
    assert as_source(root).utterances[0].id == "84-121123-0000"  # a folder of audio, recursively


@pytest.mark.parametrize("second", ["84/121123/x.wav", "other/x.flac"])
def test_a_stem_found_twice_names_both_files(tmp_path: Path, second: str) -> None:
    root = tmp_path / "audio"
    _tone(root / "84" / "121123" / "x.flac")
    _tone(root / second)
    items = _items(tmp_path / "a.item", ["x"])
    with pytest.raises(
        AmbiguousFileError,
        match=r"a.item:2 \(#file x\): two audio files .*x\.(flac|wav) and .*x\.(flac|wav)",
    ):
        abx_set(items, root)
    with pytest.raises(AmbiguousFileError, match="two audio files"):
        as_source(root)


def test_a_stem_found_nowhere_names_the_item_line(tmp_path: Path) -> None:
    _tone(tmp_path / "audio" / "x.wav")
    items = _items(tmp_path / "a.item", ["x", "x", "missing"])
    with pytest.raises(
        FileNotFoundError,
        match=r"a.item:4 \(#file missing\): no audio file missing.wav or missing.flac under",
    ):
        abx_set(items, tmp_path / "audio")


def test_item_paths_stay_inside_the_wavs_root(tmp_path: Path) -> None:
    _tone(tmp_path / "outside" / "secret.wav")
    _tone(tmp_path / "audio" / "sub" / "inner.wav")
    items = _items(tmp_path / "a.item", ["sub/inner", "../outside/secret"])
    with pytest.raises(
        SpokenCocoError,
        match=r"a.item:3 \(#file ../outside/secret\): path '../outside/secret' leaves",
    ):
        abx_set(items, tmp_path / "audio")
    source = abx_set(items, tmp_path / "audio", allow_outside=True)
    assert source.utterances[1].wav == (tmp_path / "outside" / "secret.wav").resolve()


def test_split_file_paths_stay_inside_the_corpus(tmp_path: Path) -> None:
    from training.data import load_split

    _tone(tmp_path / "outside" / "secret.wav")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for wav in ["../outside/secret.wav", str(tmp_path / "outside" / "secret.wav")]:
        entry = {"image": "val2014/COCO_1.jpg", "caption": {"wav": wav, "text": "a cat"}}
        (corpus / "SpokenCOCO_test_unrolled_karpathy.json").write_text(
            json.dumps({"data": [entry]})
        )
        with pytest.raises(
            SpokenCocoError, match=f"unrolled_karpathy.json: entry 0: path '{wav}' leaves"
        ):
            load_split(corpus, "test")
        with pytest.raises(SpokenCocoError, match="entry 0: path"):
            as_source(corpus, split="test")
        caption = load_split(corpus, "test", allow_outside=True)[0]["captions"][0]
        assert caption["wav"].resolve() == (tmp_path / "outside" / "secret.wav").resolve()


# ---------------------------------------------------------------- feature folders


def _features(path: Path, frames: int = 5, dim: int = 3) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.arange(frames * dim, dtype=np.float32).reshape(frames, dim)
    if path.suffix == ".pt":
        torch.save(torch.from_numpy(array), path)
    else:
        np.save(path, array)
    return path


@pytest.mark.parametrize("stray", ["sub/x.npy", "x.pt"])
def test_feature_stems_found_twice_name_both(tmp_path: Path, stray: str) -> None:
    _features(tmp_path / "x.npy")
    _features(tmp_path / "y.npy")
    _features(tmp_path / stray, frames=7)
    with pytest.raises(
        AmbiguousFileError, match=r"#file 'x': two feature files .*x\.(npy|pt) and .*x\."
    ):
        load_feature_dir(tmp_path, ["y", "x"])
    assert len(load_feature_dir(tmp_path, ["y"])["y"]) == 5  # other stems are not blocked


def test_zero_frame_and_non_tensor_feature_files_are_named(tmp_path: Path) -> None:
    np.save(tmp_path / "empty.npy", np.zeros((0, 3), np.float32))
    _features(tmp_path / "good.npy")
    with pytest.raises(
        FeatureFileError, match=r"empty.npy: features of shape \(0, 3\) have no frames"
    ):
        load_feature_dir(tmp_path, ["good", "empty"])
    (tmp_path / "empty.npy").unlink()
    torch.save({"feats": torch.zeros(4, 3)}, tmp_path / "dict.pt")
    with pytest.raises(FeatureFileError, match="dict.pt: holds a dict, not a tensor"):
        load_feature_dir(tmp_path, ["dict"])


class _Boom:
    def __reduce__(self):
        return (os.system, (f"touch {_Boom.marker}",))


def test_a_malicious_pt_file_is_named_and_never_run(tmp_path: Path) -> None:
    _Boom.marker = tmp_path / "ran"
    with open(tmp_path / "evil.pt", "wb") as handle:
        pickle.dump(_Boom(), handle, protocol=2)
    with pytest.raises(FeatureFileError, match="evil.pt: cannot read features"):
        load_feature_dir(tmp_path, ["evil"])
    assert not _Boom.marker.exists()


# ---------------------------------------------------------------- item files


def test_item_file_errors_name_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.item"
    path.write_text(f"{HEADER} line\nx 0.1 0.2 a b c s 7\n")
    with pytest.raises(
        ItemFileError, match="bad.item:1: header column 'line' is a name the reader uses"
    ):
        read_items(path)
    path.write_bytes(f"{HEADER}\nx 0.1 0.2 a b c s\ny 0.1 0.2 \xe9 b c s\n".encode("latin-1"))
    with pytest.raises(ItemFileError, match=r"bad.item:3: not UTF-8 text \(byte 0xe9"):
        read_items(path)
    path.write_text(f"{HEADER} extra\nx 0.1 0.2 a b c s q\n")
    assert read_items(path)["extra"].tolist() == ["q"]  # other extra columns are kept


def test_the_index_is_kept_until_a_folder_under_the_root_changes(tmp_path, monkeypatch):
    import training.data.lookup as lookup
    from training.data.lookup import AUDIO_SUFFIXES

    (tmp_path / "19" / "198").mkdir(parents=True)
    (tmp_path / "19" / "198" / "19-198-0000.flac").write_bytes(b"")
    walks = []
    walk = os.walk
    monkeypatch.setattr(lookup.os, "walk", lambda root: walks.append(root) or walk(root))
    first = lookup.stem_index(tmp_path, AUDIO_SUFFIXES)
    assert lookup.stem_index(tmp_path, AUDIO_SUFFIXES) == first and len(walks) == 1
    # A file added two folders down (the root's own stamp does not change) is seen.
    (tmp_path / "19" / "198" / "19-198-0001.wav").write_bytes(b"")
    again = lookup.stem_index(tmp_path, AUDIO_SUFFIXES)
    assert set(again) == {"19-198-0000", "19-198-0001"} and len(walks) == 2
    # As is a new speaker folder, and a removed file.
    (tmp_path / "84").mkdir()
    (tmp_path / "84" / "84-1-0000.wav").write_bytes(b"")
    (tmp_path / "19" / "198" / "19-198-0000.flac").unlink()
    assert set(lookup.stem_index(tmp_path, AUDIO_SUFFIXES)) == {"19-198-0001", "84-1-0000"}
    # The caller's copy is its own.
    mine = lookup.stem_index(tmp_path, AUDIO_SUFFIXES)
    mine.clear()
    assert lookup.stem_index(tmp_path, AUDIO_SUFFIXES)
