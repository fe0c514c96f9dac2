"""`probes.recall`: speech <-> image recall@k of a model on a corpus split (the paper's protocol).

The ranking and recall rules live in `training.retrieval` (shared with the trainer's validation).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
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
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    bootstrap: int = 0,
    confidence: float = 0.95,
    seed: int = 0,
    progress: bool = True,
    regions: Any = None,
    resample: bool = False,
    allow_outside: bool = False,
    protocol: str = "default",
    folds: int = 1,
) -> xr.DataArray:
    """Recall@k of a trained model on a corpus split (SpokenCOCO protocol).

    Args:
        model: checkpoint file, run directory, or a loaded SSLVGS.
        split: corpus split whose images and captions are retrieved among each other (train, val,
            test: the file that serves it is in docs/data.md, e.g. the Karpathy test split).
        corpus: corpus root; default: the one recorded in the run's config.json.
        regions: region features: a folder of .npz, LXMERT obj36 TSV(s), FaST-VGS HDF5 file(s)
            (a list for several); default: the corpus's own regions/ folder.
        resample: resample captions at another rate than the model's (refused by default).
        allow_outside: read wav paths that leave the split file's folder.
        protocol: "default" or "paper" (`probes.protocol`): the same rules for recall, which are the
            paper's (an image query hits when any of its captions is in the top k; each caption
            queries every image; waveforms z-normalised per utterance by the model); recorded in
            the attrs so a table says which protocol it follows.
        folds: rank each query among the candidates of its fold only, the split's images cut
            into `folds` consecutive groups (COCO's 1k protocol: 5 folds of the 5k test images;
            `training.retrieval.image_folds`); recall is the mean over all folds' queries.
    Returns:
        as `recall_at_k`, with attrs naming the model, corpus, split, split file and regions, and
        every query's rank (``speech_ranks`` [captions], ``image_ranks`` [images], ``caption_image``
        [captions]: `retrieval_ranks`), so ``analysis.paired_recall(recall(a), recall(b))`` works.
    """
    from probes.embeddings import embed_split
    from probes.protocol import check_protocol
    from training.data.spokencoco import split_path

    check_protocol(protocol)
    image_emb, audio_emb, owner, model_name, root = embed_split(
        model, split, corpus, batch_size=batch_size, device=device, progress=progress,
        regions=regions, resample=resample, allow_outside=allow_outside,
    )  # fmt: skip
    result = recall_at_k(
        image_emb, audio_emb, owner, k, bootstrap=bootstrap, confidence=confidence, seed=seed,
        folds=folds,
    )  # fmt: skip
    # Every query's rank, for paired comparisons (analysis.paired_recall takes this result as it is).
    speech_ranks, image_ranks = retrieval_ranks(image_emb, audio_emb, owner, folds=folds)
    result.attrs.update(
        speech_ranks=np.asarray(speech_ranks, dtype=np.int64),
        image_ranks=np.asarray(image_ranks, dtype=np.int64),
        caption_image=np.asarray(owner, dtype=np.int64),
    )
    result.attrs.update(
        model=model_name, corpus=str(root), split=split, probe="recall",
        split_file=str(split_path(root, split)),
        regions=str(regions if regions is not None else "regions/"), protocol=protocol,
    )  # fmt: skip
    return result
