"""What a report measures on: every split and subset, with its size and its chance level.

A verdict read off 4 test images or 12 files per speaker means something else than one read off the
paper's 5,000 images; the report says which material each number comes from:

- the **test split** (Table I, claims 1 and 2): images, captions, chance recall@k both ways;
- the **validation split** the trainer logs recall on every epoch (the forgetting lines and table);
- each **ABX set** (Table II, claim 3, the heatmaps): the item file probed, its speakers, files per
  speaker and items, beside the full set of the corpus when a subset is probed.

A test split ranked in folds (COCO's 1k protocol: every query ranks only its fold's images or
captions) has the chance level of one fold, averaged over the folds.

Chance recall: speech->image, a caption's one image among I is in the top k with probability k / I;
image->speech, an image with c of the C captions has one of them in the top k with probability
1 - C(C-c, k) / C(C, k) (averaged over images).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "chance_recall",
    "split_material",
    "item_material",
    "material_markdown",
    "split_text",
]


def chance_recall(captions_per_image: Sequence[int], k: int, folds: int = 1) -> dict[str, float]:
    """Chance recall@k of a split whose images have these caption counts: {"speech_to_image",
    "image_to_speech"} as fractions (a random ranking's expected recall); with `folds`, of the
    split ranked in that many consecutive folds (`training.retrieval.image_folds`), each query
    weighted as recall weighs it."""
    if folds > 1:  # each fold's chance, weighted by its captions (speech) and images (image)
        from training.retrieval import image_folds

        fold = image_folds(len(captions_per_image), folds)
        counts = np.asarray(captions_per_image, dtype=np.int64)
        speech = image = 0.0
        for g in range(folds):
            part = counts[fold == g].tolist()
            chance = chance_recall(part, k)
            speech += chance["speech_to_image"] * sum(part)
            image += chance["image_to_speech"] * len(part)
        return {
            "speech_to_image": speech / max(int(counts.sum()), 1),
            "image_to_speech": image / len(counts),
        }
    counts = [int(c) for c in captions_per_image]
    images, captions = len(counts), sum(counts)
    if not images or not captions:
        return {"speech_to_image": math.nan, "image_to_speech": math.nan}
    speech = min(1.0, k / images)
    top = min(k, captions)
    image = [1.0 - math.comb(captions - c, top) / math.comb(captions, top) for c in counts if c > 0]
    return {"speech_to_image": speech, "image_to_speech": sum(image) / len(counts)}


def split_material(corpus: Path | str, split: str, folds: int = 1) -> dict[str, Any]:
    """{"split", "images", "captions", "captions_per_image": [...], "folds"} of a corpus split
    (folds: how many folds its recall is ranked in)."""
    from training.data.spokencoco import load_split

    entries = load_split(corpus, split)
    counts = [len(entry["captions"]) for entry in entries]
    return {"split": split, "images": len(counts), "captions": sum(counts),
            "captions_per_image": counts, "folds": folds}  # fmt: skip


def item_material(items: Path | str, full: Path | str | None = None) -> dict[str, Any]:
    """{"items", "files", "speakers", "files_per_speaker": (min, max), "file": name} of an ABX item
    file, and the same of the `full` set it is a subset of (key "full"), if given and different."""
    from training.data.items import read_items

    table = read_items(items)
    per_speaker = table.groupby("speaker")["file"].nunique()
    out: dict[str, Any] = {
        "file": Path(items).name,
        "items": len(table),
        "files": int(table["file"].nunique()),
        "speakers": int(per_speaker.size),
        "files_per_speaker": (int(per_speaker.min()), int(per_speaker.max()))
        if per_speaker.size
        else (0, 0),
    }
    if full is not None and Path(full).resolve() != Path(items).resolve():
        out["full"] = item_material(full)
    return out


def _per_speaker(material: Mapping[str, Any]) -> str:
    low, high = material["files_per_speaker"]
    return f"{low}" if low == high else f"{low}-{high}"


def _percent(value: float) -> str:
    if not math.isfinite(value):
        return "–"
    return f"{100 * value:.1f}%" if value >= 0.001 else f"{100 * value:.2g}%"


def split_text(material: Mapping[str, Any]) -> str:
    """ "40 images, 200 captions; chance R@1 2.5% speech→image, 12.0% image→speech, R@10 ..." """
    counts, folds = material["captions_per_image"], material.get("folds", 1)
    chance = {k: chance_recall(counts, k, folds) for k in (1, 10)}
    sizes = f"{_count(material['images'], 'image')}, {_count(material['captions'], 'caption')}"
    if folds > 1:
        sizes += (
            f", ranked in {folds} folds of about {round(material['images'] / folds)} images "
            "(COCO's 1k protocol: each query ranks its own fold)"
        )
    return f"{sizes}; chance " + ", ".join(
        f"R@{k} {_percent(c['speech_to_image'])} speech→image / "
        f"{_percent(c['image_to_speech'])} image→speech"
        for k, c in chance.items()
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _uninformative(material: Mapping[str, Any]) -> str:
    """A warning when a random ranking already scores half or more speech->image R@1."""
    chance = chance_recall(material["captions_per_image"], 1)["speech_to_image"]
    if not chance >= 0.5:
        return ""
    return (
        f" **At this size chance R@1 is {_percent(chance)}: its recall cannot show forgetting** "
        "(a larger corpus, `--images`, gives it more images)."
    )


def _items_text(name: str, material: Mapping[str, Any]) -> str:
    text = (
        f"`{name}` ABX set (`{material['file']}`): {material['speakers']} speakers, "
        f"{_per_speaker(material)} files per speaker ({material['files']} files), "
        f"{material['items']} items (phone tokens)"
    )
    full = material.get("full")
    if full:
        text += (
            f"; a subset of the corpus's full set ({full['speakers']} speakers, "
            f"{_per_speaker(full)} files per speaker, {full['files']} files, {full['items']} "
            "items): the first files of each speaker in name order"
        )
    return text


def material_markdown(
    test: Mapping[str, Any] | None,
    validation: Mapping[str, Any] | None,
    abx: Mapping[str, Mapping[str, Any]],
    full_scored: Sequence[str] = (),
) -> str:
    """The report's section that names every split and subset with its size and chance level;
    full_scored: the ABX sets whose full set was scored too (claim 3 is decided on it)."""
    lines = ["## Data: the splits and subsets behind every number\n"]
    if test:
        lines.append(
            f"- **Test split** `{test['split']}` (Table I, claims 1 and 2, scored once at the final "
            f"epoch): {split_text(test)}."
        )
    if validation:
        lines.append(
            f"- **Validation split** `{validation['split']}` (the recall the trainer logs every "
            f'epoch: the forgetting table and the claims\' "logged ... at the switch" lines): '
            f"{split_text(validation)}.{_uninformative(validation)}"
        )
    for name, material in abx.items():
        full = name in full_scored and "full" in material
        uses = (
            "Table II, Fig. 2 and the heatmaps"
            if full
            else "Table II, claim 3, Fig. 2 and the heatmaps"
        )
        also = (
            " Claim 3 is decided on the full set (the compared models' final checkpoints, at their "
            "best layers on the subset), the subset's verdict beside it."
            if full
            else ""
        )
        lines.append(
            f"- {_items_text(name, material)} ({uses}). ABX chance level: 50% error.{also}"
        )
    return "\n".join(lines) + "\n"
