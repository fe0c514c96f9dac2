"""What activations are extracted from: a corpus split, an ABX set, or a list of wav files.

Every source becomes an ordered list of `Utterance`s (id, wav, speaker, text) and a `key` that
changes whenever the list or any wav file changes, so the activation cache can never serve
activations of other audio.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Utterance", "Source", "CorpusSplit", "AbxSet", "WavList", "as_source"]

SPLIT_FILE = "spokencoco_{split}.json"
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
        """Hex sha256 over every utterance's id, wav path, size and modification time."""
        if self._key is None:
            digest = hashlib.sha256(self.origin.encode())
            for utt in self.utterances:
                stat = os.stat(utt.wav)
                digest.update(f"\n{utt.id}|{utt.wav}|{stat.st_size}|{stat.st_mtime_ns}".encode())
            self._key = digest.hexdigest()
        return self._key


def CorpusSplit(root: str | Path, split: str) -> Source:
    """The spoken captions of one split of a SpokenCOCO-layout corpus (JSON order)."""
    from training.data import load_split

    root = Path(root).resolve()
    split_file = root / SPLIT_FILE.format(split=split)
    if not split_file.exists():
        raise FileNotFoundError(f"{split_file}: no such split file (split {split!r} of {root})")
    utterances = [
        Utterance(
            id=str(caption["uttid"]),
            wav=_existing_wav(Path(caption["wav"]), root, f"{split_file} ({caption['uttid']})"),
            speaker=str(caption.get("speaker", "")),
            text=str(caption.get("text", "")),
        )
        for entry in load_split(root, split)
        for caption in entry["captions"]
    ]
    return Source(name=split, origin=f"{split_file}", utterances=utterances, corpus=root, _key=None)


def AbxSet(items: str | Path, wavs: str | Path | None = None) -> Source:
    """The wavs an item file names (#file column, order of first appearance).

    Args:
        items: a ZeroSpeech item file, or a directory holding `items.item`.
        wavs: the directory of `<#file>.wav`; defaults to `wavs/` beside the item file.
    """
    from training.data import read_items

    items = Path(items).resolve()
    if items.is_dir():
        items = items / ITEM_FILE
    if not items.exists():
        raise FileNotFoundError(f"{items}: no such item file")
    wav_dir = Path(wavs).resolve() if wavs is not None else items.parent / "wavs"
    table = read_items(items)
    utterances: dict[str, Utterance] = {}
    for file, speaker, line in zip(table["file"], table["speaker"], table["line"], strict=True):
        if file in utterances:
            continue
        where = f"{items}:{line} (#file {file})"
        wav = _existing_wav(wav_dir / f"{file}.wav", wav_dir, where)
        utterances[file] = Utterance(id=str(file), wav=wav, speaker=str(speaker))
    corpus = items.parent.parent.parent if items.parent.parent.name == "abx" else None
    return Source(
        name=f"abx-{items.parent.name}",
        origin=f"{items} with wavs in {wav_dir}",
        utterances=list(utterances.values()),
        items=items,
        corpus=corpus,
    )


def WavList(wavs: Sequence[str | Path], *, name: str = "wavs") -> Source:
    """Wav files given one by one; ids are the file stems (which must be distinct)."""
    paths = [Path(wav).resolve() for wav in wavs]
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such wav file")
    utterances = [Utterance(id=path.stem, wav=path) for path in paths]
    return Source(name=name, origin=f"{len(paths)} wav files", utterances=utterances)


def as_source(source: Any, *, split: str | None = None, wavs: str | Path | None = None) -> Source:
    """Coerce what the user passed into a `Source`.

    Accepted: a `Source`; `(corpus_dir, split)`; a corpus directory with `split=`; an ABX set
    directory (holding `items.item`) or an item file, with optional `wavs=`; a directory of wav files;
    a wav file; a list of wav files.
    """
    if isinstance(source, Source):
        return source
    if isinstance(source, tuple) and len(source) == 2 and isinstance(source[1], str):
        return CorpusSplit(source[0], source[1])
    if isinstance(source, list | tuple):
        return WavList(source)
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such corpus, ABX set, item file or wav file")
    if path.is_file():
        return AbxSet(path, wavs) if path.suffix == ".item" else WavList([path])
    if (path / ITEM_FILE).exists():
        return AbxSet(path, wavs)
    if any(path.glob(SPLIT_FILE.format(split="*"))):
        if split is None:
            raise ValueError(
                f"{path} is a corpus directory: name its split (split= or --split: train, val or test)"
            )
        return CorpusSplit(path, split)
    found = sorted(path.glob("*.wav"))
    if not found:
        raise ValueError(
            f"{path}: neither a corpus, an ABX set (items.item) nor a directory of wavs"
        )
    return WavList(found, name=path.name)


def _existing_wav(wav: Path, root: Path, where: str) -> Path:
    resolved = wav if wav.is_absolute() else root / wav
    if not resolved.is_file():
        raise FileNotFoundError(f"{where}: wav file {resolved} is not there")
    return resolved.resolve()
