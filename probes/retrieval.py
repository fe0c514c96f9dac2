"""`probes.recall`: speech <-> image recall@k of a model on a corpus split (the paper's protocol).

The ranking and recall rules live in `training.retrieval` (shared with the trainer's validation).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import xarray as xr

# The pure ranking functions are training's (shared with validation); probes re-exports them.
from training.retrieval import DIRECTIONS, recall_at_k, retrieval_ranks

__all__ = ["recall", "recall_at_k", "retrieval_ranks", "DIRECTIONS"]


def recall(
    model: Any,
    split: str = "test",
    k: Sequence[int] = (1, 5, 10),
    corpus: str | Path | None = None,
    *,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    bootstrap: int = 0,
    confidence: float = 0.95,
    seed: int = 0,
    progress: bool = True,
) -> xr.DataArray:
    """Recall@k of a trained model on a corpus split (SpokenCOCO protocol).

    Args:
        model: checkpoint file, run directory, or a loaded SSLVGS.
        split: corpus split whose images and captions are retrieved among each other.
        corpus: corpus root; default: the one recorded in the run's config.json.
    Returns:
        as `recall_at_k`, with attrs naming the model, corpus and split.
    """
    from probes.embeddings import embed_split

    image_emb, audio_emb, owner, model_name, root = embed_split(
        model, split, corpus, batch_size=batch_size, device=device, progress=progress
    )
    result = recall_at_k(
        image_emb, audio_emb, owner, k, bootstrap=bootstrap, confidence=confidence, seed=seed
    )
    result.attrs.update(model=model_name, corpus=str(root), split=split, probe="recall")
    return result
