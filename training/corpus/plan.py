"""The corpus's plan: every scene, caption and read sentence, and who says it, drawn from the seed.

Planning comes before any synthesis, so a build that was interrupted finds the same plan again, and
each image and each read-set speaker draws from its own random stream: adding images, speakers or
sentences keeps everything drawn before (training/corpus/build.py writes the plan out).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.corpus.espeak import Voice
from training.corpus.grammar import describe_scene, read_sentence
from training.corpus.scenes import SceneObject, random_scene
from training.corpus.speakers import POOL_SIZES, make_speakers

__all__ = [
    "READ_SENTENCES_PER_SPEAKER",
    "READ_SPEAKERS",
    "Scene",
    "Utterance",
    "plan_corpus",
    "split_sizes",
]

READ_SPEAKERS = POOL_SIZES["read"]  # the `read` ABX set's speakers unless asked for more
READ_SENTENCES_PER_SPEAKER = 25


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


def split_sizes(images: int, test_images: int | None = None) -> dict[str, int]:
    """Images per split: test ~1/6, val ~1/30 (each at least 1), train the rest (at least 1).

    test_images: a test split of this size instead, added to the `images` (whose train and val
    splits stay as they are): a larger test split narrows recall's intervals without changing what
    the models train on.
    """
    if images < 3:
        raise ValueError(f"a corpus needs at least 3 images (train, val, test), got {images}")
    if test_images is not None and test_images < 1:
        raise ValueError(f"test_images must be at least 1, got {test_images}")
    test = max(1, round(images / 6))
    val = max(1, round(images / 30))
    return {"train": images - test - val, "val": val, "test": test_images or test}


def plan_corpus(
    images: int,
    captions_per_image: int,
    seed: int,
    read_speakers: int = READ_SPEAKERS,
    read_sentences_per_speaker: int = READ_SENTENCES_PER_SPEAKER,
    test_images: int | None = None,
) -> tuple[list[Scene], list[Utterance], dict[str, dict[str, Voice]]]:
    """Scenes with their captions, the read utterances, and the speaker pools, all from `seed`
    (split sizes: `split_sizes(images, test_images)`; scenes are numbered train, val, test)."""
    sizes = split_sizes(images, test_images)
    pools = {
        "train": make_speakers(seed, "train", max(captions_per_image, 10)),
        "heldout": make_speakers(seed, "heldout", max(captions_per_image, 6)),
        "read": make_speakers(seed, "read", read_speakers),
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
    return scenes, _read_utterances(seed, pools["read"], read_sentences_per_speaker), pools


def _read_utterances(seed: int, speakers: dict[str, Voice], sentences: int) -> list[Utterance]:
    """`sentences` read sentences per speaker; each speaker draws from its own stream, so adding
    speakers or sentences keeps every earlier speaker's sentences (a prefix of the same draws)."""
    read = []
    for s, speaker in enumerate(speakers):
        rng = np.random.default_rng([seed, 3, s])
        for n in range(sentences):
            uttid = f"read_{s}_{n:03d}"
            read.append(
                Utterance(uttid, "read", read_sentence(rng), speaker, f"abx/read/wavs/{uttid}.wav")
            )
    return read
