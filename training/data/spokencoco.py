"""SpokenCOCO split files: read and validate, with every path resolved against the corpus root.

Schema (the real SpokenCOCO's, which the embedded corpus also writes):

    {"data": [{"image": "<relpath>", "captions": [{"wav": "<relpath>", "text": str,
               "speaker": str, "uttid": str}, ...]}, ...]}

The split file is `spokencoco_<split>.json` (the embedded corpus) or `SpokenCOCO_<split>.json` (the
real data set's name) under the root.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["SpokenCocoError", "load_split", "split_path"]

CAPTION_FIELDS = ("wav", "text", "speaker", "uttid")


class SpokenCocoError(ValueError):
    """A malformed split file; the message names the file and the entry."""


def split_path(root: str | os.PathLike, split: str) -> Path:
    """The split file of `split` under `root` (either spelling); FileNotFoundError if neither exists."""
    root = Path(root)
    for name in (f"spokencoco_{split}.json", f"SpokenCOCO_{split}.json"):
        if (root / name).is_file():
            return root / name
    raise FileNotFoundError(f"{root}: no spokencoco_{split}.json (or SpokenCOCO_{split}.json)")


def _check_entry(path: Path, index: int, entry: object) -> None:
    where = f"{path}: entry {index}"
    if not isinstance(entry, dict):
        raise SpokenCocoError(f"{where}: expected an object with image and captions")
    if not isinstance(entry.get("image"), str) or not entry["image"]:
        raise SpokenCocoError(f"{where}: 'image' must be a non-empty string")
    captions = entry.get("captions")
    if not isinstance(captions, list) or not captions:
        raise SpokenCocoError(f"{where} ({entry['image']}): 'captions' must be a non-empty list")
    for k, caption in enumerate(captions):
        if not isinstance(caption, dict):
            raise SpokenCocoError(f"{where}, caption {k}: expected an object")
        for field in CAPTION_FIELDS:
            if not isinstance(caption.get(field), str) or not caption[field]:
                raise SpokenCocoError(f"{where}, caption {k}: {field!r} must be a non-empty string")


def load_split(root: str | os.PathLike, split: str) -> list[dict]:
    """The image entries of one split, validated.

    Each entry: {"image": Path (absolute), "key": image stem (the region-feature key), "captions":
    [{"wav": Path (absolute), "text", "speaker", "uttid"}]}. Wav files are not opened here (a
    missing one is reported when it is read, naming the split file and entry).
    Raises FileNotFoundError for a missing split file, SpokenCocoError naming the file and entry for
    invalid JSON or an entry that does not follow the schema.
    """
    path = split_path(root, split)
    base = path.parent.resolve()
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise SpokenCocoError(f"{path}: invalid JSON at line {error.lineno}: {error.msg}") from None
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        raise SpokenCocoError(f"{path}: expected an object with a 'data' list")
    entries = []
    for index, entry in enumerate(document["data"]):
        _check_entry(path, index, entry)
        entries.append(
            {
                "image": base / entry["image"],
                "key": Path(entry["image"]).stem,
                "captions": [
                    {**{f: c[f] for f in CAPTION_FIELDS}, "wav": base / c["wav"]}
                    for c in entry["captions"]
                ],
                "entry": index,
            }
        )
    return entries
