"""The `read` ABX set's size is a knob (`read_speakers`, `read_sentences_per_speaker`): more
speakers take further espeak-ng voices after the first six, the first speakers and their sentences
stay the same, the default corpus keeps its bytes, and a corpus of another size on disk is refused
by name."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from analysis.cli import main
from analysis.paper.step_timer import StepTimer
from training.corpus import build_corpus, plan_corpus
from training.corpus.espeak import SILENCE, Synthesizer, Voice, text_to_phones
from training.corpus.grammar import read_sentence
from training.corpus.speakers import SPEAKER_POOLS, make_speakers, pool_voices
from training.data import read_alignment, read_items

# sha256 over (relative path, sha256 of the bytes) of every file of build_corpus(out, images=3,
# captions_per_image=2, seed=5) (natural, the default), made before the read set had a size knob
# (commit 93871eb) and made again when the natural variation's rooms and noise were made milder
# (2026-12-07, docs/corpus.md), and again when each utterance got its channel (a4ce4b9): the
# default must keep reproducing it.
DEFAULT_NATURAL_TREE = "b9731ce2a7a452baaa4f1f8956d3ae1b245351d23f770e3316a04fa513fa6ae0"
DEFAULT_NATURAL_FILES = 228
SMALL = {"images": 3, "captions_per_image": 2, "seed": 5, "progress": False}
WIDE = {"read_speakers": 12, "read_sentences_per_speaker": 3}
# Files that say how big the read set is (besides abx/read/): they differ between the two sizes.
SIZE_FILES = {".build-settings.json", "manifest.json", "variation.tsv", "abx/read/items.item"}


def _files(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _tree_digest(root: Path) -> tuple[str, int]:
    files = _files(root)
    digest = hashlib.sha256()
    for name, sha in files.items():
        digest.update(f"{name}\0{sha}\n".encode())
    return digest.hexdigest(), len(files)


@pytest.fixture(scope="module")
def default(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_corpus(tmp_path_factory.mktemp("default") / "c", **SMALL)


@pytest.fixture(scope="module")
def wide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_corpus(tmp_path_factory.mktemp("wide") / "c", **SMALL, **WIDE)


def _read_speakers(corpus: Path) -> dict[str, dict]:
    speakers = json.loads((corpus / "manifest.json").read_text())["speakers"]
    return {name: s for name, s in speakers.items() if s["pool"] == "read"}


def test_the_default_natural_corpus_keeps_its_bytes(default: Path) -> None:
    assert _tree_digest(default) == (DEFAULT_NATURAL_TREE, DEFAULT_NATURAL_FILES)


def test_the_read_set_has_the_speakers_and_sentences_asked_for(wide: Path) -> None:
    items = read_items(wide / "abx" / "read" / "items.item")
    assert items["speaker"].nunique() == 12
    assert items.groupby("speaker")["file"].nunique().tolist() == [3] * 12
    manifest = json.loads((wide / "manifest.json").read_text())
    assert manifest["counts"]["speakers"]["read"] == 12
    assert manifest["counts"]["captions"]["read"] == manifest["abx"]["read"]["files"] == 36
    assert (
        manifest["settings"]["read_speakers"],
        manifest["settings"]["read_sentences_per_speaker"],
    ) == (12, 3)
    voices = [s["voice"] for s in _read_speakers(wide).values()]
    assert len(set(voices)) == 12 and voices == pool_voices("read")[:12]


def test_more_read_speakers_change_nothing_else(default: Path, wide: Path) -> None:
    """The first 4 speakers (voices, draws) and the first 3 sentences of each are the default's,
    byte for byte; scenes, captions and the `captions` set too; only the read set grows."""
    first, more = _files(default), _files(wide)
    for name in first.keys() - SIZE_FILES:
        if not name.startswith("abx/read/") and "/read/" not in name:
            assert more[name] == first[name], name
    for s in range(4):
        for n in range(3):
            for name in (
                f"abx/read/wavs/read_{s}_{n:03d}.wav",
                f"alignments/read/read_{s}_{n:03d}.txt",
            ):
                assert more[name] == first[name], name
    assert list(_read_speakers(wide).items())[:4] == list(_read_speakers(default).items())


def test_every_read_utterance_is_tiled_by_the_phones_espeak_reports(wide: Path) -> None:
    voices = {name: s["voice"] for name, s in _read_speakers(wide).items()}
    _, read, _ = plan_corpus(3, 2, 5, **WIDE)
    items = read_items(wide / "abx" / "read" / "items.item")
    assert sorted(items["file"].unique()) == sorted(u.uttid for u in read)
    for utt in read:
        phones = read_alignment(wide / utt.alignment)  # checks contiguity from 0
        assert all(onset < offset for onset, offset, _ in phones)
        spoken = [p for _, _, p in phones if p != SILENCE]
        assert spoken == text_to_phones(utt.text, voices[utt.speaker]), utt.uttid


def test_every_read_voice_says_every_phone() -> None:
    """Each of the pool's voices, at the fastest speaker rate, gives phones of non-zero length that
    are exactly the ones espeak-ng reports for the text (a language that drops phones fails)."""
    rng = np.random.default_rng(7)
    texts = [read_sentence(rng) for _ in range(3)]
    with Synthesizer() as synthesizer:
        for name in pool_voices("read"):
            voice = Voice(name, pitch=50, rate=185, range=50)
            for text in texts:
                synthesis = synthesizer(text, voice)
                assert (np.diff(synthesis.starts) > 0).all(), (name, text)
                spoken = [p for p in synthesis.phones if p != SILENCE]
                assert spoken == text_to_phones(text, voice), (name, text)


def test_voices_are_new_and_reused_only_past_the_last() -> None:
    voices = pool_voices("read")
    languages, variants = SPEAKER_POOLS["read"]
    assert len(voices) == len(set(voices)) == 70
    assert set(voices[:6]) == {f"{lang}+{var}" for lang in languages for var in variants}
    others = {v.split("+")[1] for pool in ("train", "heldout") for v in pool_voices(pool)}
    assert not others & {v.split("+")[1] for v in voices}
    speakers = make_speakers(0, "read", 75)
    assert list(speakers)[:70] == voices and list(speakers)[70] == f"{voices[0]}~2"
    assert speakers[f"{voices[0]}~2"].name == voices[0]
    assert speakers[f"{voices[0]}~2"] != speakers[voices[0]]  # its own pitch/rate draw
    assert list(make_speakers(0, "read", 12).items()) == list(speakers.items())[:12]


def test_a_corpus_of_another_read_set_size_is_refused_by_name(default: Path, wide: Path) -> None:
    before = _files(default)
    with pytest.raises(ValueError, match="read_speakers 4 on disk, 12 asked for"):
        build_corpus(default, **SMALL, read_speakers=12)
    with pytest.raises(ValueError, match="read_sentences_per_speaker 25 on disk, 10 asked for"):
        build_corpus(default, **SMALL, read_sentences_per_speaker=10)
    with pytest.raises(ValueError, match="read_speakers 12 on disk, 4 asked for"):
        build_corpus(wide, **SMALL, read_sentences_per_speaker=3)
    assert _files(default) == before
    with pytest.raises(ValueError, match="read_speakers >= 2"):
        build_corpus(default.parent / "one", **SMALL, read_speakers=1)


def test_the_corpus_command_takes_the_read_set_size(
    wide: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    args = ["corpus", str(wide), "--images", "3", "--captions-per-image", "2", "--seed", "5"]
    before = _files(wide)
    assert (
        main([*args, "--read-speakers", "12", "--read-sentences-per-speaker", "3", "--no-progress"])
        == 0
    )
    assert _files(wide) == before  # the same corpus: nothing to do
    assert main([*args, "--no-progress"]) == 2
    error = capsys.readouterr().err.strip()
    assert "read_speakers 12 on disk, 4 asked for" in error and len(error.splitlines()) == 1


def test_reproduce_builds_its_corpus_with_the_read_speakers_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """`sslvgs reproduce --read-speakers N` reaches the corpus build (stopped there), and the
    report's preamble gives the corpus's count."""
    import analysis.paper.reproduction as reproduction
    import training.corpus

    class Stop(Exception):
        pass

    asked = []

    def build(root, **options):
        asked.append(options)
        raise Stop

    monkeypatch.setattr(training.corpus, "build_corpus", build)
    with pytest.raises(Stop):
        main(
            [
                "reproduce",
                str(tmp_path / "out"),
                "--quick",
                "--read-speakers",
                "12",
                "--no-progress",
            ]
        )
    assert (
        asked[0]["read_speakers"] == 12 and asked[0]["images"] == reproduction.PLANS["quick"].images
    )
    with pytest.raises(Stop):
        main(["reproduce", str(tmp_path / "again"), "--quick", "--no-progress"])
    assert asked[1]["read_speakers"] == 4
    # the default plan: 12 read speakers (claim 3's units) and 1000 test images (claims 1 and 2)
    with pytest.raises(Stop):
        main(["reproduce", str(tmp_path / "default"), "--no-progress"])
    assert asked[2]["read_speakers"] == 12 and asked[2]["test_images"] == 1000
    with pytest.raises(Stop):
        main(["reproduce", str(tmp_path / "more"), "--test-images", "400", "--no-progress"])
    assert asked[3]["test_images"] == 400
    assert (
        main(["reproduce", str(tmp_path / "x"), "--corpus", str(tmp_path), "--read-speakers", "8"])
        == 2
    )
    assert "--read-speakers" in capsys.readouterr().err
    assert (
        main(["reproduce", str(tmp_path / "y"), "--corpus", str(tmp_path), "--test-images", "8"])
        == 2
    )
    assert "--test-images" in capsys.readouterr().err
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "manifest.json").write_text(json.dumps({"counts": {"speakers": {"read": 12}}}))
    timer = StepTimer(tmp_path / "timings.json")
    preamble = reproduction._preamble(reproduction.PLANS["quick"], "tiny", corpus, timer)
    assert "12 read-set speakers" in preamble


def test_a_plan_probes_its_own_number_of_files_per_speaker_of_each_set(
    wide: Path, tmp_path: Path
) -> None:
    import dataclasses

    from analysis.paper.material import item_material
    from analysis.paper.reproduction import PLANS, _item_files

    plan = dataclasses.replace(PLANS["quick"], abx_sets=("read", "captions"),
                               abx_files_per_speaker=(("read", 2),))  # fmt: skip
    files = _item_files(tmp_path, wide, plan)
    assert set(files) == {"read"}  # captions: the corpus's full set
    material = item_material(files["read"])
    assert material["files_per_speaker"] == (2, 2) and material["speakers"] == 12
    both = _item_files(tmp_path / "both", wide, dataclasses.replace(plan, abx_files_per_speaker=1))
    assert set(both) == {"read", "captions"}


def test_cka_compares_the_models_on_the_plans_first_files_of_each_captions_speaker(
    tmp_path: Path,
) -> None:
    import dataclasses

    from analysis.paper.material import item_material
    from analysis.paper.reproduction import PLANS, _cka_items, _preamble

    corpus = tmp_path / "corpus"
    captions = corpus / "abx" / "captions" / "items.item"  # the corpus layout
    captions.parent.mkdir(parents=True)
    rows = [f"s{k}_{f} 0.1 0.2 a b c s{k}" for k in range(3) for f in range(4)]
    captions.write_text("#file onset offset #phone prev-phone next-phone speaker\n"
                        + "\n".join(rows) + "\n")  # fmt: skip
    plan = dataclasses.replace(PLANS["default"], cka_files_per_speaker=2)
    material = item_material(_cka_items(tmp_path, corpus, plan), captions)
    assert material["speakers"] == 3 and material["files_per_speaker"] == (2, 2)
    timer = StepTimer(tmp_path / "timings.json")
    assert "CKA on 4000 frames of the first 2 captions of each speaker" in _preamble(
        plan, "compact", corpus, timer
    )
    # Without a captions set (the quick plan), or with None, CKA takes its default audio.
    assert _cka_items(tmp_path, corpus, PLANS["quick"]) is None
    assert (
        _cka_items(tmp_path, corpus, dataclasses.replace(plan, cka_files_per_speaker=None)) is None
    )
