"""The embedded spoken-scenes corpus: a small SpokenCOCO-like data set made offline in minutes.

`build_corpus(out)` draws scenes, renders them, computes LXMERT-style region features, writes five
spoken captions per image (espeak-ng, a different synthetic speaker each) with phone alignments, and
two ZeroSpeech ABX sets; the layout is documented in docs/formats.md.

Every utterance is its own realisation (`variation="natural"`, the default; training/corpus/variation.py):
the speaker's voice jittered, a speed perturbation, a room and noise, drawn per utterance;
`variation="clean"` gives the plain espeak-ng corpus of earlier versions, byte for byte.

Reproducible and resumable: everything is planned up front from the seed, each image and each
utterance draws from its own random stream and every file is written atomically, so a build that was
interrupted picks up where it stopped and ends with the same bytes as one that was not. One build at a
time writes a folder (a lock beside it, `OUT.lock`); a second waits for it, or refuses with `wait=0`.
The speech is made in several worker processes (`workers`, training/corpus/speech.py), with the same
bytes as in one.
"""

from __future__ import annotations

import functools
import io
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np

from training.corpus.abx_sets import abx_items, write_abx_items
from training.corpus.espeak import Voice
from training.corpus.plan import (
    READ_SENTENCES_PER_SPEAKER,
    READ_SPEAKERS,
    Scene,
    Utterance,
    plan_corpus,
    split_sizes,
)
from training.corpus.scenes import RegionEncoder, render_scene
from training.corpus.speech import (
    SAMPLE_RATE,
    SpeechJob,
    realisation,
    refuse_in_a_starting_worker,
    speak_all,
    writing,
)
from training.corpus.variation import VARIATIONS, Variation
from training.fileio import exclusive, write_bytes_atomic, write_npz, write_text_atomic
from training.progress import progress_bar as tqdm

__all__ = [
    "DEFAULT_IMAGES",
    "DEFAULT_REGION_DIM",
    "PAPER_REGION_DIM",
    "READ_SENTENCES_PER_SPEAKER",
    "READ_SPEAKERS",
    "SAMPLE_RATE",
    "VARIATION_TABLE",
    "build_corpus",
    "plan_corpus",
    "split_sizes",
]

DEFAULT_IMAGES = 300  # ~1200 training captions, 50 test images: the demo's budget on 2 cores
DEFAULT_REGION_DIM = 256
PAPER_REGION_DIM = 2048  # LXMERT's
IMAGE_SIZE = 224
GENERATOR_VERSION = 1
SETTINGS_FILE = ".build-settings.json"  # written first; a resumed build must match it
SPLITS = ("train", "val", "test")
VARIATION_TABLE = "variation.tsv"  # each utterance's realisation (natural corpora only)


def _write_scene(root: Path, scene: Scene, encoder: RegionEncoder, seed: int, index: int) -> None:
    png = root / "images" / f"{scene.key}.png"
    if not png.exists():
        buffer = io.BytesIO()
        render_scene(scene.objects, IMAGE_SIZE).save(buffer, format="PNG")  # no time or text chunks
        with writing(png):
            write_bytes_atomic(png, buffer.getvalue())
    regions = root / "regions" / f"{scene.key}.npz"
    if not regions.exists():
        feats, boxes = encoder(scene.objects, np.random.default_rng([seed, 2, index]))
        with writing(regions):
            write_npz(regions, feats=feats, boxes=boxes)


def _split_json(scenes: list[Scene], split: str) -> str:
    data = [
        {
            "image": f"images/{scene.key}.png",
            "captions": [
                {"wav": u.wav, "text": u.text, "speaker": u.speaker, "uttid": u.uttid}
                for u in scene.captions
            ],
        }
        for scene in scenes
        if scene.split == split
    ]
    return json.dumps({"data": data}, indent=1, ensure_ascii=False) + "\n"


def _copy_into_abx(root: Path, utt: Utterance) -> Utterance:
    """The held-out caption as a member of the `captions` ABX set (same bytes, hard-linked if possible)."""
    target = f"abx/captions/wavs/{utt.uttid}.wav"
    if not (root / target).exists():
        tmp = root / f"abx/captions/wavs/.{utt.uttid}.tmp"
        with writing(root / target):
            _link_or_copy(root / utt.wav, tmp, root / target)
    return Utterance(utt.uttid, utt.split, utt.text, utt.speaker, target)


def _link_or_copy(source: Path, tmp: Path, target: Path) -> None:
    """`target` becomes `source`'s bytes (a hard link where possible), via `tmp`, atomically."""
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.unlink(missing_ok=True)
    try:
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# Settings left out of the build settings when they have their default (so that default corpora
# keep the bytes of the versions before them), with the value their absence means.
_OMITTED_SETTINGS = {
    "read_speakers": READ_SPEAKERS,
    "variation": "clean",
    "test_images": "about images / 6",
}


def _differences(previous: dict, settings: dict) -> str:
    """The settings that differ, by name ("read_speakers 4 on disk, 12 asked for; ...")."""

    def shown(values: dict, key: str):
        return values.get(key, _OMITTED_SETTINGS.get(key, "none"))

    keys = sorted(
        k for k in previous.keys() | settings.keys() if shown(previous, k) != shown(settings, k)
    )
    return "; ".join(
        f"{k} {shown(previous, k)} on disk, {shown(settings, k)} asked for" for k in keys
    )


def _check_settings(root: Path, settings: dict) -> None:
    path = root / SETTINGS_FILE
    if path.exists():
        previous = json.loads(path.read_text())
        if previous != settings:
            raise ValueError(
                f"{root} holds (part of) a corpus built with other settings "
                f"({_differences(previous, settings)}): use another folder or delete this one"
            )
    elif root.exists() and any(p.name != SETTINGS_FILE for p in root.iterdir()):
        raise ValueError(
            f"{root} is not empty and holds no corpus build: refusing to write into it"
        )
    else:
        write_text_atomic(path, json.dumps(settings, indent=1, sort_keys=True) + "\n")


def _variation(variation: str | Variation | None) -> Variation | None:
    if isinstance(variation, Variation) or variation is None:
        return variation
    if variation not in VARIATIONS:
        raise ValueError(f"variation {variation!r}: expected one of {', '.join(VARIATIONS)}")
    return VARIATIONS[variation]


def build_corpus(
    out: str | os.PathLike,
    *,
    images: int = DEFAULT_IMAGES,
    captions_per_image: int = 5,
    seed: int = 0,
    region_dim: int = DEFAULT_REGION_DIM,
    variation: str | Variation | None = "natural",
    read_speakers: int = READ_SPEAKERS,
    read_sentences_per_speaker: int = READ_SENTENCES_PER_SPEAKER,
    test_images: int | None = None,
    wait: float | None = None,
    progress: bool = True,
    workers: int | None = None,
) -> Path:
    """Build (or finish building) the spoken-scenes corpus in `out`; returns its path.

    variation: "natural" (each utterance its own realisation, see training/corpus/variation.py), "clean"
    or None (plain espeak-ng, the corpus of earlier versions byte for byte), or a `Variation` with
    other ranges. read_speakers, read_sentences_per_speaker: the size of the `read` ABX set (its
    speaker bootstrap has one unit per speaker; more speakers than the default take further
    espeak-ng voices, docs/corpus.md; the first speakers and their sentences stay the same).
    test_images: the test split's size (default: about a sixth of `images`); the train and val
    splits of `images` stay the same scenes (`training.corpus.plan.split_sizes`).
    wait: seconds to wait for another build of the same folder (None: as long as it takes, 0:
    refuse at once with `training.fileio.LockedError`).
    workers: processes that speak the utterances not yet on disk. None: one more than the cores
    this process may use, at most 4, and at most one per 256 utterances to speak (starting one
    costs a few seconds; `training.corpus.speech.default_workers`); 1: in this process, no pool. The bytes are
    the same whatever the number.

    Same arguments, same bytes. A folder that holds a partial build with the same arguments is
    completed; one with other arguments, or unrelated files, is refused (ValueError).
    """
    refuse_in_a_starting_worker()
    root = Path(out)
    if captions_per_image < 1:
        raise ValueError(f"captions_per_image must be at least 1, got {captions_per_image}")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if read_speakers < 2 or read_sentences_per_speaker < 1:
        raise ValueError(
            "the read set needs read_speakers >= 2 (across-speaker ABX) and "
            f"read_sentences_per_speaker >= 1, got {read_speakers} and {read_sentences_per_speaker}"
        )
    variation = _variation(variation)
    settings = {
        "generator_version": GENERATOR_VERSION,
        "images": images,
        "captions_per_image": captions_per_image,
        "seed": seed,
        "region_dim": region_dim,
        "image_size": IMAGE_SIZE,
        "sample_rate": SAMPLE_RATE,
        "read_sentences_per_speaker": read_sentences_per_speaker,
    }
    if read_speakers != READ_SPEAKERS:  # the default keeps the settings (and bytes) of before
        settings["read_speakers"] = read_speakers
    if test_images is not None:
        settings["test_images"] = test_images
    if variation is not None:  # a clean corpus keeps the settings (and bytes) of earlier versions
        settings["variation"] = variation.settings()
    scenes, read, pools = plan_corpus(
        images, captions_per_image, seed, read_speakers, read_sentences_per_speaker, test_images
    )
    say = functools.partial(print, file=sys.stderr)
    with exclusive(root, what="the corpus build", wait=wait, notify=say):
        _check_settings(root, settings)
        _build(root, scenes, read, pools, settings, variation, progress, workers)
    return root


def _build(
    root: Path,
    scenes: list[Scene],
    read: list[Utterance],
    pools: dict[str, dict[str, Voice]],
    settings: dict,
    variation: Variation | None,
    progress: bool,
    workers: int | None,
) -> None:
    seed = settings["seed"]
    for stale in root.rglob(".*.tmp"):  # half-written files of a build that was killed
        stale.unlink()
    voices = {name: voice for pool in pools.values() for name, voice in pool.items()}
    encoder = RegionEncoder(settings["region_dim"], seed)
    utterances = [u for scene in scenes for u in scene.captions] + read
    total = len(scenes) + len(utterances)
    with tqdm(total=total, desc="corpus", unit="item", disable=not progress) as bar:
        for index, scene in enumerate(scenes):
            _write_scene(root, scene, encoder, seed, index)
            bar.update()
        todo = [
            u for u in utterances if not ((root / u.wav).exists() and (root / u.alignment).exists())
        ]
        bar.update(len(utterances) - len(todo))
        speak_all(SpeechJob(root, voices, seed, variation), todo, workers, bar.update)
    texts = {f"spokencoco_{split}.json": _split_json(scenes, split) for split in SPLITS}
    if variation is not None:
        texts[VARIATION_TABLE] = _variation_table(utterances, voices, seed, variation)
    for name, text in texts.items():
        with writing(root / name):
            write_text_atomic(root / name, text)
    test = [_copy_into_abx(root, u) for s in scenes if s.split == "test" for u in s.captions]
    abx_counts = {}
    for name, members in (("captions", test), ("read", read)):
        table = abx_items(root, members)
        with writing(root / "abx" / name / "items.item"):
            write_abx_items(root / "abx" / name / "items.item", table)
        abx_counts[name] = {
            "files": len(members),
            "items": len(table),
            "phones": int(table["phone"].nunique()),
        }
    manifest = _manifest(settings, scenes, read, pools, abx_counts)
    with writing(root / "manifest.json"):
        write_text_atomic(
            root / "manifest.json", json.dumps(manifest, indent=1, ensure_ascii=False) + "\n"
        )


def _variation_table(
    utterances: list[Utterance], voices: dict[str, Voice], seed: int, variation: Variation
) -> str:
    """Tab-separated: each utterance's id, speaker and realisation (`Realisation.row`)."""
    lines = []
    for utt in utterances:
        row = realisation(seed, utt, voices[utt.speaker], variation).row()
        if not lines:
            lines.append("\t".join(["uttid", "speaker", *row]))
        lines.append("\t".join([utt.uttid, utt.speaker, *(str(v) for v in row.values())]))
    return "\n".join(lines) + "\n"


def _manifest(
    settings: dict,
    scenes: list[Scene],
    read: list[Utterance],
    pools: dict[str, dict[str, Voice]],
    abx_counts: dict,
) -> dict:
    counts = {"images": {}, "captions": {}, "speakers": {}}
    for split in SPLITS:
        members = [s for s in scenes if s.split == split]
        counts["images"][split] = len(members)
        counts["captions"][split] = sum(len(s.captions) for s in members)
        counts["speakers"][split] = len({u.speaker for s in members for u in s.captions})
    counts["captions"]["read"] = len(read)
    counts["speakers"]["read"] = len({u.speaker for u in read})
    speakers = {
        name: {"pool": pool, "voice": v.name, "pitch": v.pitch, "range": v.range, "rate": v.rate}
        for pool, members in pools.items()
        for name, v in members.items()
    }
    return {
        "generator": "training.corpus.build_corpus",
        "settings": settings,
        "counts": counts,
        "abx": abx_counts,
        "speakers": speakers,
        "layout": "see README.md, section 'Corpus layout'",
    }
