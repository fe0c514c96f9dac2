"""The test recall of a run's last checkpoint, with its image-bootstrap interval and every query's
rank (for paired comparisons), cached in the run's analysis folder: what Table I and claims 1-2 read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from analysis.metric_names import recall_key
from analysis.paper.evidence import Ranks
from analysis.runs import checkpoints
from training.fileio import write_text_atomic
from training.run.directory import analysis_cache

__all__ = ["final_recall", "recall_record", "RECALL_VERSION"]

RECALL_VERSION = 2  # bump when what the recall cache holds changes


def final_recall(
    run: Path | str,
    corpus: Path | str,
    split: str = "test",
    *,
    regions: Path | str | None = None,
    folds: int = 1,
    progress: bool = True,
) -> dict[str, float]:
    """Recall@1/5/10 both ways of the run's last checkpoint on `split`, as {"speech_to_image_r1": ...,
    "images": n, "captions": n} (see `recall_record` for its intervals, ranks and folds)."""
    return recall_record(run, corpus, split, regions=regions, folds=folds, progress=progress)[
        "recall"
    ]


def recall_record(
    run: Path | str,
    corpus: Path | str,
    split: str = "test",
    *,
    bootstrap: int = 1000,
    confidence: float = 0.95,
    regions: Path | str | None = None,
    folds: int = 1,
    progress: bool = True,
) -> dict[str, Any]:
    """The run's last checkpoint on `split`: {"recall": {key: value, "images", "captions"}, "low":
    {key: value}, "high": {...} (the image bootstrap's percentile interval), "ranks": the ranks of
    every query (`Ranks.to_json`), for paired comparisons}; with `folds`, ranked within that many
    folds of the images (`training.retrieval.image_folds`). Cached in
    RUN/analysis/recall-<split>.json, keyed by the checkpoint's checksum, the bootstrap's settings
    and the folds."""
    import training
    from training.retrieval import recall_at_k, retrieval_ranks

    last = list(checkpoints(run).values())[-1]
    key = {"checkpoint": training.checkpoint_id(last), "version": RECALL_VERSION,
           "bootstrap": bootstrap, "confidence": confidence, "folds": folds}  # fmt: skip
    cache = analysis_cache(run) / f"recall-{split}.json"
    if cache.is_file():
        stored = json.loads(cache.read_text())
        if {k: stored.get(k) for k in key} == key:
            return stored["record"]
    images, audio, owner = _embed(last, split, corpus, regions, progress)
    result = recall_at_k(images, audio, owner, (1, 5, 10), bootstrap=bootstrap,
                         confidence=confidence, folds=folds)  # fmt: skip
    speech, image = retrieval_ranks(images, audio, owner, folds=folds)
    record: dict[str, Any] = {"recall": {}, "low": {}, "high": {}}
    for direction in result.direction.values:
        for k in result.k.values:
            cell = result.sel(direction=direction, k=k)
            name = recall_key(str(direction), int(k))
            record["recall"][name] = float(cell)
            record["low"][name], record["high"][name] = float(cell.low), float(cell.high)
    record["recall"].update(images=float(len(image)), captions=float(len(speech)))
    record["ranks"] = Ranks(speech, image, np.asarray(owner)).to_json()
    write_text_atomic(cache, json.dumps({**key, "record": record}))
    return record


def _embed(checkpoint: Path, split: str, corpus, regions, progress: bool):
    import probes

    extra = (
        {"regions": regions} if regions is not None else {}
    )  # a regions source other than the corpus's
    images, audio, owner, _, _ = probes.embed_split(
        checkpoint, split, corpus, progress=progress, **extra
    )
    return images, audio, owner
