"""SpokenCOCO split files: one resolver for training and probes, both public layouts, paths kept inside.

Two schemas are read (docs/data.md):

- grouped, one entry per image (the distributed ``SpokenCOCO_{train,val}.json`` and our own
  ``spokencoco_{split}.json``)::

    {"data": [{"image": "<relpath>", "captions": [{"wav": "<relpath>", "text": str,
               "speaker": str, "uttid": str}, ...]}, ...]}

- unrolled, one entry per caption (the Karpathy split, ``SpokenCOCO_{split}_unrolled_karpathy.json``)::

    {"data": [{"image": "<relpath>", "caption": {"wav": "<relpath>", "text": str, ...}}, ...]}

  regrouped per image on load, images in order of first appearance.

A split name finds its file by the precedence of `SPLIT_FILES` (first that exists wins, with a
`SplitPrecedenceWarning` naming the others); a name ending in ``.json`` is that file under the root. Wav paths are relative to the JSON's folder and must stay inside it
unless ``allow_outside=True``. The image key (the region-feature key) is the image file's stem.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

__all__ = [
    "SpokenCocoError", "SplitPrecedenceWarning", "SPLIT_FILES", "load_split", "split_path", "inside_root", "caption_where",
]  # fmt: skip

CAPTION_FIELDS = ("wav", "text", "speaker", "uttid")

# Which file serves a split, most specific first: our own corpus file, the Karpathy split the paper's
# code trains and tests on, then the distributed per-image file (train and val only).
SPLIT_FILES = (
    "spokencoco_{split}.json",
    "SpokenCOCO_{split}_unrolled_karpathy.json",
    "SpokenCOCO_{split}.json",
)


class SplitPrecedenceWarning(UserWarning):
    """Two files could serve one split; the one of higher precedence is read (the message names both)."""


class SpokenCocoError(ValueError):
    """A malformed split file or a path leaving its root; the message names the file and the entry."""


def split_path(root: str | os.PathLike, split: str) -> Path:
    """The file that serves `split` under `root` (precedence of `SPLIT_FILES`), or the file `split`
    names when it ends in ``.json``; FileNotFoundError listing what was looked for."""
    root = Path(root)
    if split.endswith(".json"):
        if (root / split).is_file():
            return root / split
        raise FileNotFoundError(f"{root / split}: no such split file")
    names = [name.format(split=split) for name in SPLIT_FILES]
    present = [root / name for name in names if (root / name).is_file()]
    if len({p.resolve() for p in present}) > 1:  # one file on a case-insensitive disk is not two
        warnings.warn(
            f"{root}: split {split!r} is served by {present[0].name} (the precedence of "
            f"docs/data.md); also present: {', '.join(p.name for p in present[1:])}",
            SplitPrecedenceWarning,
            stacklevel=2,
        )
    if present:
        return present[0]
    raise FileNotFoundError(f"{root}: no split file for {split!r} (looked for {', '.join(names)})")


def inside_root(path: str | os.PathLike, root: Path, where: str, allow_outside: bool) -> Path:
    """`root / path`, refused (SpokenCocoError naming `where` and the path) if it leaves `root`.

    The check is on the written path (absolute, or climbing out with ``..``), not on symlink targets:
    a data folder that links its audio elsewhere stays readable.
    """
    joined = Path(os.path.normpath(root / path))
    if not allow_outside and not joined.is_relative_to(Path(os.path.normpath(root))):
        raise SpokenCocoError(
            f"{where}: path {str(path)!r} leaves {root} (pass allow_outside=True / "
            "--allow-outside-root to read it)"
        )
    return joined


def _check_caption(where: str, caption: object) -> dict:
    """A caption with every field a non-empty string; speaker and uttid derived when absent.

    SpokenCOCO's wav names are ``<speaker>-<hit>_<image>_<caption>.wav``: the uttid is the stem and the
    speaker its part before the first ``-`` (the Karpathy files carry neither field).
    """
    if not isinstance(caption, dict):
        raise SpokenCocoError(f"{where}: expected an object")
    if not isinstance(caption.get("wav"), str) or not caption["wav"]:
        raise SpokenCocoError(f"{where}: 'wav' must be a non-empty string")
    stem = Path(caption["wav"]).stem
    defaults = {"text": "", "uttid": stem, "speaker": stem.split("-", 1)[0]}
    out = {"wav": caption["wav"]}
    for field in ("text", "speaker", "uttid"):
        value = caption.get(field, defaults[field])
        if field in caption and (not isinstance(value, str) or not value):
            raise SpokenCocoError(f"{where}: {field!r} must be a non-empty string")
        out[field] = value
    return out


def caption_where(caption: dict) -> str:
    """Where a caption of `load_split` sits in its file: "entry 3, caption 1" or "entry 17"."""
    k = caption.get("caption")
    return f"entry {caption['entry']}" + ("" if k is None else f", caption {k}")


def _image(where: str, entry: dict) -> str:
    if not isinstance(entry.get("image"), str) or not entry["image"]:
        raise SpokenCocoError(f"{where}: 'image' must be a non-empty string")
    return entry["image"]


def _grouped(path: Path, data: list) -> list[tuple[int, str, list[dict]]]:
    """(entry index, image, captions) per entry of either schema, unrolled entries regrouped."""
    groups: dict[str, tuple[int, str, list[dict]]] = {}
    out = []
    for index, entry in enumerate(data):
        where = f"{path}: entry {index}"
        if not isinstance(entry, dict) or not ("captions" in entry or "caption" in entry):
            raise SpokenCocoError(
                f"{where}: expected an object with image and captions (grouped SpokenCOCO) or "
                "image and caption (Karpathy unrolled)"
            )
        image = _image(where, entry)
        if "caption" in entry:  # unrolled: one caption per entry, grouped under its image
            caption = _check_caption(f"{where} ({image}), caption", entry["caption"])
            caption.update(entry=index, caption=None)
            if image not in groups:
                groups[image] = (index, image, [])
                out.append(groups[image])
            groups[image][2].append(caption)
            continue
        captions = entry["captions"]
        if not isinstance(captions, list) or not captions:
            raise SpokenCocoError(f"{where} ({image}): 'captions' must be a non-empty list")
        checked = [
            {**_check_caption(f"{where}, caption {k}", c), "entry": index, "caption": k}
            for k, c in enumerate(captions)
        ]
        out.append((index, image, checked))
    return out


def load_split(root: str | os.PathLike, split: str, *, allow_outside: bool = False) -> list[dict]:
    """The image entries of one split, validated, from whichever file serves it (`split_path`).

    Each entry: {"image": Path (absolute), "key": image stem (the region-feature key), "entry": index
    of its (first) entry in the file, "captions": [{"wav": Path (absolute), "text", "speaker",
    "uttid", "entry", "caption" (index within a grouped entry, None when unrolled)}]}
    (`caption_where` says where a caption is, for messages). Wav files are not opened here (a missing one is reported when it is read,
    naming the split file and entry).
    Raises FileNotFoundError for a missing split file, SpokenCocoError naming the file and entry for
    invalid JSON, an entry of neither schema, or a wav/image path that leaves the JSON's folder
    (unless `allow_outside`).
    """
    path = split_path(root, split)
    base = path.parent.resolve()
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise SpokenCocoError(f"{path}: invalid JSON at line {error.lineno}: {error.msg}") from None
    except UnicodeDecodeError as error:
        raise SpokenCocoError(f"{path}: not UTF-8 text (byte {error.start})") from None
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        raise SpokenCocoError(f"{path}: expected an object with a 'data' list")
    entries = []
    for index, image, captions in _grouped(path, document["data"]):
        entries.append(
            {
                "image": base / image,  # never read: only its stem, the region key, is used
                "key": Path(image).stem,
                "captions": [
                    {
                        **c,
                        "wav": inside_root(
                            c["wav"], base, f"{path}: {caption_where(c)}", allow_outside
                        ),
                    }
                    for c in captions
                ],
                "entry": index,
            }
        )
    return entries
