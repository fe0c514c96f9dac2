"""Find files by stem anywhere under a root: audio for ABX sets and wav folders, features for ABX.

One rule for every lookup (docs/data.md): a name is a file's stem, found at any depth under the root
with any of the accepted suffixes (LibriSpeech's ``SPEAKER/CHAPTER/SPEAKER-CHAPTER-NNNN.flac`` as well
as a flat ``wavs/<stem>.wav``); two candidates for one name (two folders, or ``.wav`` beside ``.flac``)
are an error naming both; a name found nowhere names where it was asked for. A name written as a path
(``sub/x``) is looked up at that path, and one that leaves the root (``../../x``, ``/abs/x``) is refused
unless ``allow_outside=True``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from training.data.spokencoco import inside_root

__all__ = ["AUDIO_SUFFIXES", "AmbiguousFileError", "stem_index", "find_by_stem", "find_audio"]

AUDIO_SUFFIXES = (".wav", ".flac")


class AmbiguousFileError(ValueError):
    """Two files answer to one name; the message names both."""


# (root, suffixes) -> (every walked folder's modification stamp, the index): a probe asks for the same
# ABX set's audio once per checkpoint, and walking a folder of 5000 wavs took 90 ms each time.
_INDEXES: dict[
    tuple[str, str, tuple[str, ...]], tuple[dict[str, tuple], dict[str, list[Path]]]
] = {}
_INDEXES_KEPT = 16


def stem_index(root: str | os.PathLike, suffixes: Iterable[str]) -> dict[str, list[Path]]:
    """stem -> every file under `root` (any depth, sorted) whose suffix is one of `suffixes`.

    Kept per process and walked again when any folder under `root` changed (a file added, removed
    or renamed changes its folder's modification stamp; only the folders are stat'ed to check).
    """
    # Paths are built on `root` as given (relative stays relative), so the key holds both.
    key = (os.path.abspath(root), os.fspath(root), tuple(suffixes))
    cached = _INDEXES.get(key)
    if cached is not None and all(_stamp(folder) == stamp for folder, stamp in cached[0].items()):
        return dict(cached[1])
    stamps: dict[str, tuple] = {}
    index: dict[str, list[Path]] = {}
    for dirpath, dirnames, filenames in os.walk(key[1]):
        stamps[dirpath] = _stamp(dirpath)
        dirnames.sort()
        for filename in sorted(filenames):
            stem, suffix = os.path.splitext(filename)
            if suffix in key[2]:
                index.setdefault(stem, []).append(Path(dirpath) / filename)
    if stamps:  # a missing root is not kept: it may appear
        _INDEXES.pop(key, None)
        _INDEXES[key] = (stamps, index)
        while len(_INDEXES) > _INDEXES_KEPT:
            del _INDEXES[next(iter(_INDEXES))]
    return dict(index)


def _stamp(folder: str) -> tuple | None:
    """What changes when a folder's entries change: its inode and modification time (ns)."""
    try:
        info = os.stat(folder)
    except OSError:
        return None
    return (info.st_ino, info.st_mtime_ns)


def _at_path(root: Path, name: str, suffixes: tuple[str, ...], where: str, allow_outside: bool):
    base = inside_root(name, root, where, allow_outside)
    return [
        base.with_name(base.name + s) for s in suffixes if base.with_name(base.name + s).is_file()
    ]


def find_by_stem(
    root: str | os.PathLike,
    names: Iterable[str],
    *,
    suffixes: Iterable[str],
    where: Callable[[str], str] = repr,
    what: str = "file",
    allow_outside: bool = False,
) -> dict[str, Path]:
    """The one file of each name under `root` (see the module docstring).

    Args:
        names: stems (or relative paths without suffix) to find; duplicates are looked up once.
        suffixes: accepted suffixes, e.g. (".wav", ".flac").
        where: name -> where it was asked for ("items.item:12 (#file x)"), for the messages.
        what: what a file is called in the messages ("audio file", "feature file").
    Returns:
        name -> path, in the order of `names`.
    Raises:
        FileNotFoundError: `root` is missing, or a name has no file (naming where it was asked for).
        AmbiguousFileError: a name has two candidates (naming both).
        SpokenCocoError: a name that leaves `root` without `allow_outside`.
    """
    root, suffixes, names = Path(root), tuple(suffixes), list(dict.fromkeys(names))
    if names and not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder (looking for {what}s)")
    index: dict[str, list[Path]] | None = None  # walked once, when a plain stem is first asked for
    found: dict[str, Path] = {}
    for name in names:
        if os.sep in name or "/" in name or name in (".", ".."):
            candidates = _at_path(root, name, suffixes, where(name), allow_outside)
        else:
            index = stem_index(root, suffixes) if index is None else index
            candidates = index.get(name, [])
        if not candidates:
            tried = " or ".join(f"{Path(name).name}{s}" for s in suffixes)
            raise FileNotFoundError(f"{where(name)}: no {what} {tried} under {root}")
        if len(candidates) > 1:
            raise AmbiguousFileError(
                f"{where(name)}: two {what}s for {name!r}: {candidates[0]} and {candidates[1]}"
            )
        found[name] = candidates[0]
    return found


def find_audio(
    root: str | os.PathLike,
    names: Iterable[str],
    *,
    where: Callable[[str], str] = repr,
    allow_outside: bool = False,
) -> dict[str, Path]:
    """`find_by_stem` for audio: ``.wav`` or ``.flac`` at any depth under `root`."""
    return find_by_stem(
        root, names, suffixes=AUDIO_SUFFIXES, where=where, what="audio file",
        allow_outside=allow_outside,
    )  # fmt: skip
