"""Validation recall inside the trainer: embed a split's captions and images, rank, count hits.

Embedding (`training.embedding`) and recall (`training.retrieval`) are the functions `probes.recall`
uses, so the trainer's numbers are the probes' numbers.
"""

from __future__ import annotations

from typing import Any

from training.embedding import embed_captions
from training.retrieval import recall_at_k

__all__ = ["validation_recall"]


def validation_recall(
    model: Any, dataset: Any, batch_size: int, device: str, k: tuple[int, ...] = (1, 5, 10)
) -> dict[str, float]:
    """{"speech_to_image_r1": ..., "image_to_speech_r10": ...} in 0..1 on `dataset` (the val split)."""
    images, audio = embed_captions(model, dataset, batch_size=batch_size, device=device)
    result = recall_at_k(images, audio, dataset.caption_image_index, k=k)
    return {
        f"{direction}_r{kk}": float(result.sel(direction=direction, k=kk))
        for direction in result.direction.values
        for kk in result.k.values
    }
