"""What activations are extracted from: a corpus split, an ABX set, or a list of wav files.

Every source becomes an ordered list of `Utterance`s (id, wav, speaker, text) and a `key` that
changes whenever the list or any wav file changes, so the activation cache can never serve
activations of other audio.
"""

from __future__ import annotations

import functools
import hashlib
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "Utterance", "Source", "corpus_split", "abx_set", "wav_list", "audio_folder", "as_source",
]  # fmt: skip

ITEM_FILE = "items.item"


@dataclass(frozen=True)
class Utterance:
    """One wav file; `id` is what item files call it (#file) and what the store's `utterance` holds."""

    id: str
    wav: Path
    speaker: str = ""
    text: str = ""


@dataclass
class Source:
    """An ordered list of utterances and where they came from.

    Attributes:
        name: short label used in cache file names ("test", "abx-captions", "wavs").
        origin: human-readable description (paths), kept in the store's attributes.
        utterances: in the order of the source (corpus JSON order, first item, or the list).
        items: the ZeroSpeech item file, for ABX sets.
        corpus: the corpus root, where known.
    """

    name: str
    origin: str
    utterances: list[Utterance]
    items: Path | None = None
    corpus: Path | None = None
    _key: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.utterances:
            raise ValueError(f"{self.origin}: no utterances (an empty split, item file or list)")
        seen: dict[str, Path] = {}
        for utt in self.utterances:
            if utt.id in seen and seen[utt.id] != utt.wav:
                raise ValueError(
                    f"{self.origin}: two wav files share the id {utt.id!r}: {seen[utt.id]} and {utt.wav}"
                )
            seen[utt.id] = utt.wav

    @property
    def key(self) -> str:
        """Hex sha256 over every utterance's id, wav file name, size and modification time: not
        the folders they are in, so a corpus moved with its caches (``mv`` keeps the times) finds them."""
        if self._key is None:
            digest = hashlib.sha256(b"source-v2")
            for utt in self.utterances:
                stat = os.stat(utt.wav)
                name = Path(utt.wav).name
                digest.update(f"\n{utt.id}|{name}|{stat.st_size}|{stat.st_mtime_ns}".encode())
            self._key = digest.hexdigest()
        return self._key


def corpus_split(root: str | Path, split: str, *, allow_outside: bool = False) -> Source:
    """The spoken captions of one split of a SpokenCOCO-layout corpus (file order).

    The split file is whichever serves `split` (`training.data.spokencoco.split_path`: our own
    ``spokencoco_{split}.json``, the Karpathy unrolled file, or the distributed one).
    """
    from training.data.spokencoco import caption_where, load_split, split_path

    root = Path(root).resolve()
    split_file = split_path(root, split)
    utterances = [
        Utterance(
            id=str(caption["uttid"]),
            wav=_existing_wav(caption["wav"], f"{split_file}: {caption_where(caption)}"),
            speaker=str(caption.get("speaker", "")),
            text=str(caption.get("text", "")),
        )
        for entry in load_split(root, split, allow_outside=allow_outside)
        for caption in entry["captions"]
    ]
    return Source(name=split, origin=f"{split_file}", utterances=utterances, corpus=root, _key=None)


def abx_set(
    items: str | Path, wavs: str | Path | None = None, *, allow_outside: bool = False
) -> Source:
    """The audio files an item file names (#file column, order of first appearance).

    Args:
        items: a ZeroSpeech item file, or a directory holding `items.item`.
        wavs: the folder under which each #file is found by stem, at any depth, as ``.wav`` or
            ``.flac`` (LibriSpeech's SPEAKER/CHAPTER/ folders included); default: `wavs/` beside
            the item file.
        allow_outside: read a #file written as a path that leaves `wavs` (``../x``).
    Raises:
        FileNotFoundError naming the item line of a #file found nowhere; AmbiguousFileError naming
        both files of a #file found twice.
    """
    from training.data import read_items
    from training.data.lookup import find_audio

    items = Path(items).resolve()
    if items.is_dir():
        items = items / ITEM_FILE
    if not items.exists():
        raise FileNotFoundError(f"{items}: no such item file")
    wav_dir = Path(wavs).resolve() if wavs is not None else items.parent / "wavs"
    table = read_items(items)
    first = {}
    for file, speaker, line in zip(table["file"], table["speaker"], table["line"], strict=True):
        first.setdefault(file, (speaker, line))
    found = find_audio(
        wav_dir, first, where=lambda f: f"{items}:{first[f][1]} (#file {f})",
        allow_outside=allow_outside,
    )  # fmt: skip
    utterances = [
        Utterance(id=str(file), wav=found[file].resolve(), speaker=str(speaker))
        for file, (speaker, _) in first.items()
    ]
    corpus = items.parent.parent.parent if items.parent.parent.name == "abx" else None
    return Source(
        name=f"abx-{items.parent.name}",
        origin=f"{items} with wavs in {wav_dir}",
        utterances=utterances,
        items=items,
        corpus=corpus,
    )


def wav_list(wavs: Sequence[str | Path], *, name: str = "wavs") -> Source:
    """Audio files given one by one; ids are the file stems (which must be distinct)."""
    paths = [Path(wav).resolve() for wav in wavs]
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such audio file")
    utterances = [Utterance(id=path.stem, wav=path) for path in paths]
    return Source(name=name, origin=f"{len(paths)} audio files", utterances=utterances)


def audio_folder(folder: str | Path) -> Source:
    """Every ``.wav`` and ``.flac`` at any depth under `folder`; two files of one stem are an error."""
    from training.data.lookup import AUDIO_SUFFIXES, find_audio, stem_index

    folder = Path(folder).resolve()
    stems = sorted(stem_index(folder, AUDIO_SUFFIXES))
    if not stems:
        raise ValueError(
            f"{folder}: neither a corpus, an ABX set (items.item) nor a folder of audio"
        )
    found = find_audio(folder, stems, where=lambda stem: f"{folder} (stem {stem})")
    return wav_list([found[stem] for stem in stems], name=folder.name)


def is_corpus(path: Path) -> bool:
    """Whether `path` holds a SpokenCOCO split file of any accepted name."""
    from training.data.spokencoco import SPLIT_FILES

    return any(any(path.glob(name.format(split="*"))) for name in SPLIT_FILES)


def as_source(
    source: Any,
    *,
    split: str | None = None,
    wavs: str | Path | None = None,
    allow_outside: bool = False,
) -> Source:
    """Coerce what the user passed into a `Source`.

    Accepted: a `Source`; `(corpus_dir, split)`; a corpus directory with `split=`; an ABX set
    directory (holding `items.item`) or an item file, with optional `wavs=`; a folder of audio files
    (.wav, .flac, at any depth); an audio file; a list of audio files. `allow_outside`: read wav
    paths (split files) and #file paths (item files) that leave their root.
    """
    if isinstance(source, Source):
        return source
    if isinstance(source, tuple) and len(source) == 2 and isinstance(source[1], str):
        return corpus_split(source[0], source[1], allow_outside=allow_outside)
    if isinstance(source, list | tuple):
        return wav_list(source)
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such corpus, ABX set, item file or audio file")
    if path.is_file():
        if path.suffix == ".item":
            return abx_set(path, wavs, allow_outside=allow_outside)
        return wav_list([path])
    if (path / ITEM_FILE).exists():
        return abx_set(path, wavs, allow_outside=allow_outside)
    if is_corpus(path):
        if split is None:
            raise ValueError(
                f"{path} is a corpus directory: name its split (split= or --split: train, val or test)"
            )
        return corpus_split(path, split, allow_outside=allow_outside)
    return audio_folder(path)


def _existing_wav(wav: Path, where: str) -> Path:
    if not wav.is_file():
        raise FileNotFoundError(f"{where}: wav file {wav} is not there")
    return wav.resolve()


def _deprecated(function: Callable[..., Source], old: str) -> Callable[..., Source]:
    """`function` under its CamelCase name of before issue #21, warning once per call site."""

    @functools.wraps(function)
    def alias(*args: Any, **kwargs: Any) -> Source:
        warnings.warn(
            f"probes.sources.{old} is deprecated: use probes.sources.{function.__name__}",
            DeprecationWarning,
            stacklevel=2,
        )
        return function(*args, **kwargs)

    alias.__name__ = alias.__qualname__ = old
    alias.__doc__ = f"Deprecated: use `{function.__name__}`."
    return alias


# The builders' old names, kept for code written against them; not listed in __all__.
CorpusSplit = _deprecated(corpus_split, "CorpusSplit")
AbxSet = _deprecated(abx_set, "AbxSet")
WavList = _deprecated(wav_list, "WavList")
AudioFolder = _deprecated(audio_folder, "AudioFolder")
