"""The embedded spoken-scenes corpus: a small SpokenCOCO-like data set made offline in minutes.

`build_corpus(out)` draws scenes, renders them, computes LXMERT-style region features, writes five
spoken captions per image (espeak-ng, a different synthetic speaker each) with phone alignments, and
two ZeroSpeech ABX sets; the layout is documented in docs/formats.md.

Reproducible and resumable: everything is planned up front from the seed, each image and each
utterance draws from its own random stream and every file is written atomically, so a build that was
interrupted picks up where it stopped and ends with the same bytes as one that was not.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from training.progress import progress_bar as tqdm

from training.abx_sets import abx_items, write_abx_items
from training.data.alignments import write_alignment
from training.data.audio import resample, resampled_position, wav_bytes
from training.espeak import Synthesis, Synthesizer, Voice
from training.fileio import write_bytes_atomic, write_npz, write_text_atomic
from training.grammar import describe_scene, read_sentence
from training.scenes import RegionEncoder, SceneObject, random_scene, render_scene
from training.speakers import make_speakers

__all__ = [
    "DEFAULT_IMAGES",
    "DEFAULT_REGION_DIM",
    "PAPER_REGION_DIM",
    "SAMPLE_RATE",
    "build_corpus",
    "plan_corpus",
    "split_sizes",
]

DEFAULT_IMAGES = 300  # ~1200 training captions, 50 test images: the demo's budget on 2 cores
DEFAULT_REGION_DIM = 256
PAPER_REGION_DIM = 2048  # LXMERT's
SAMPLE_RATE = 16000
IMAGE_SIZE = 224
READ_SENTENCES_PER_SPEAKER = 25
GENERATOR_VERSION = 1
SETTINGS_FILE = ".build-settings.json"  # written first; a resumed build must match it


@dataclass(frozen=True)
class Utterance:
    """One planned utterance: where it goes and what is said by whom."""

    uttid: str
    split: str  # train, val, test or read
    text: str
    speaker: str
    wav: str  # path relative to the corpus root

    @property
    def alignment(self) -> str:
        return f"alignments/{self.split}/{self.uttid}.txt"


@dataclass(frozen=True)
class Scene:
    key: str
    split: str
    objects: list[SceneObject]
    captions: list[Utterance]


def split_sizes(images: int) -> dict[str, int]:
    """Images per split: test ~1/6, val ~1/30 (each at least 1), train the rest (at least 1)."""
    if images < 3:
        raise ValueError(f"a corpus needs at least 3 images (train, val, test), got {images}")
    test = max(1, round(images / 6))
    val = max(1, round(images / 30))
    return {"train": images - test - val, "val": val, "test": test}


def plan_corpus(
    images: int, captions_per_image: int, seed: int
) -> tuple[list[Scene], list[Utterance], dict[str, dict[str, Voice]]]:
    """Scenes with their captions, the read utterances, and the speaker pools, all from `seed`."""
    sizes = split_sizes(images)
    pools = {
        "train": make_speakers(seed, "train", max(captions_per_image, 10)),
        "heldout": make_speakers(seed, "heldout", max(captions_per_image, 6)),
        "read": make_speakers(seed, "read"),
    }
    splits = [s for s, n in sizes.items() for _ in range(n)]
    scenes = []
    for index, split in enumerate(splits):
        rng = np.random.default_rng([seed, 1, index])
        objects = random_scene(rng)
        key = f"scene_{index:05d}"
        pool = list(pools["train" if split == "train" else "heldout"])
        speakers = rng.choice(pool, size=captions_per_image, replace=False)
        captions = [
            Utterance(f"{key}_{k}", split, describe_scene(objects, rng), str(speaker),
                      f"wavs/{split}/{key}_{k}.wav")
            for k, speaker in enumerate(speakers)
        ]  # fmt: skip
        scenes.append(Scene(key, split, objects, captions))
    read = []
    for s, speaker in enumerate(pools["read"]):
        rng = np.random.default_rng([seed, 3, s])
        for n in range(READ_SENTENCES_PER_SPEAKER):
            uttid = f"read_{s}_{n:03d}"
            read.append(
                Utterance(uttid, "read", read_sentence(rng), speaker, f"abx/read/wavs/{uttid}.wav")
            )
    return scenes, read, pools


def _to_corpus_rate(synthesis: Synthesis) -> tuple[np.ndarray, list[int]]:
    """int16 samples at 16 kHz and the phone bounds (len(phones) + 1, first 0, last T) moved along."""
    audio = resample(synthesis.samples.astype(np.float64), synthesis.sample_rate, SAMPLE_RATE)
    samples = np.clip(np.rint(audio), -32768, 32767).astype(np.int16)
    bounds = [
        resampled_position(int(s), synthesis.sample_rate, SAMPLE_RATE) for s in synthesis.starts
    ]
    return samples, [*bounds, samples.size]


def _speak(synthesizer: Synthesizer, root: Path, utt: Utterance, voice: Voice) -> None:
    synthesis = synthesizer(utt.text, voice)
    samples, bounds = _to_corpus_rate(synthesis)
    if any(b >= e for b, e in zip(bounds[:-1], bounds[1:], strict=True)):
        raise RuntimeError(f"a phone of {utt.uttid} ({utt.text!r}) vanished when resampling")
    write_bytes_atomic(root / utt.wav, wav_bytes(samples, SAMPLE_RATE))
    write_alignment(root / utt.alignment, bounds, list(synthesis.phones), SAMPLE_RATE)


def _write_scene(root: Path, scene: Scene, encoder: RegionEncoder, seed: int, index: int) -> None:
    png = root / "images" / f"{scene.key}.png"
    if not png.exists():
        buffer = io.BytesIO()
        render_scene(scene.objects, IMAGE_SIZE).save(buffer, format="PNG")  # no time or text chunks
        write_bytes_atomic(png, buffer.getvalue())
    regions = root / "regions" / f"{scene.key}.npz"
    if not regions.exists():
        feats, boxes = encoder(scene.objects, np.random.default_rng([seed, 2, index]))
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
        tmp.parent.mkdir(parents=True, exist_ok=True)
        tmp.unlink(missing_ok=True)
        try:
            os.link(root / utt.wav, tmp)
        except OSError:
            shutil.copyfile(root / utt.wav, tmp)
        os.replace(tmp, root / target)
    return Utterance(utt.uttid, utt.split, utt.text, utt.speaker, target)


def _check_settings(root: Path, settings: dict) -> None:
    path = root / SETTINGS_FILE
    if path.exists():
        previous = json.loads(path.read_text())
        if previous != settings:
            raise ValueError(
                f"{root} holds (part of) a corpus built with {previous}; asked for {settings}: "
                "use another folder or delete this one"
            )
    elif root.exists() and any(p.name != SETTINGS_FILE for p in root.iterdir()):
        raise ValueError(
            f"{root} is not empty and holds no corpus build: refusing to write into it"
        )
    else:
        write_text_atomic(path, json.dumps(settings, indent=1, sort_keys=True) + "\n")


def build_corpus(
    out: str | os.PathLike,
    *,
    images: int = DEFAULT_IMAGES,
    captions_per_image: int = 5,
    seed: int = 0,
    region_dim: int = DEFAULT_REGION_DIM,
    progress: bool = True,
) -> Path:
    """Build (or finish building) the spoken-scenes corpus in `out`; returns its path.

    Same arguments, same bytes. A folder that holds a partial build with the same arguments is
    completed; one with other arguments, or unrelated files, is refused (ValueError).
    """
    root = Path(out)
    if captions_per_image < 1:
        raise ValueError(f"captions_per_image must be at least 1, got {captions_per_image}")
    settings = {
        "generator_version": GENERATOR_VERSION,
        "images": images,
        "captions_per_image": captions_per_image,
        "seed": seed,
        "region_dim": region_dim,
        "image_size": IMAGE_SIZE,
        "sample_rate": SAMPLE_RATE,
        "read_sentences_per_speaker": READ_SENTENCES_PER_SPEAKER,
    }
    scenes, read, pools = plan_corpus(images, captions_per_image, seed)
    _check_settings(root, settings)
    for stale in root.rglob(".*.tmp"):  # half-written files of a build that was killed
        stale.unlink()
    voices = {name: voice for pool in pools.values() for name, voice in pool.items()}
    encoder = RegionEncoder(region_dim, seed)
    utterances = [u for scene in scenes for u in scene.captions] + read
    total = len(scenes) + len(utterances)
    with tqdm(total=total, desc="corpus", unit="item", disable=not progress) as bar:
        for index, scene in enumerate(scenes):
            _write_scene(root, scene, encoder, seed, index)
            bar.update()
        with Synthesizer() as synthesizer:
            for utt in utterances:
                if not ((root / utt.wav).exists() and (root / utt.alignment).exists()):
                    _speak(synthesizer, root, utt, voices[utt.speaker])
                bar.update()
    for split in ("train", "val", "test"):
        write_text_atomic(root / f"spokencoco_{split}.json", _split_json(scenes, split))
    test = [_copy_into_abx(root, u) for s in scenes if s.split == "test" for u in s.captions]
    abx_counts = {}
    for name, members in (("captions", test), ("read", read)):
        table = abx_items(root, members)
        write_abx_items(root / "abx" / name / "items.item", table)
        abx_counts[name] = {
            "files": len(members),
            "items": len(table),
            "phones": int(table["phone"].nunique()),
        }
    manifest = _manifest(settings, scenes, read, pools, abx_counts)
    write_text_atomic(
        root / "manifest.json", json.dumps(manifest, indent=1, ensure_ascii=False) + "\n"
    )
    return root


def _manifest(
    settings: dict,
    scenes: list[Scene],
    read: list[Utterance],
    pools: dict[str, dict[str, Voice]],
    abx_counts: dict,
) -> dict:
    counts = {"images": {}, "captions": {}, "speakers": {}}
    for split in ("train", "val", "test"):
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
