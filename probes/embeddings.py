"""Retrieval embeddings of a corpus split for a model given any way a probe accepts one
(`training.embedding.embed_captions` does the work, shared with the trainer's validation)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from probes.models import as_layered_model, bounded_memory
from training.embedding import embed_captions

__all__ = ["embed_split"]


def embed_split(
    model: Any,
    split: str,
    corpus: str | Path | None = None,
    *,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    progress: bool = True,
    regions: Any = None,
    resample: bool = False,
    allow_outside: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, str, Path]:
    """Embeddings of one split for recall@k.

    Args:
        model: checkpoint file, run directory or SSLVGS (it needs encode_audio and encode_image).
        split: train, val, test (the file that serves it: docs/data.md) or a split file's name.
        corpus: corpus root; default: the one in the run's config.json.
        regions: region features (any PATH `training.data.open_regions` takes, or opened ones);
            None: those the run's config.json records (``regions``) when probing the run's own
            corpus, else the corpus's regions/ folder.
        resample: resample audio at another rate (as `training.data.CaptionDataset`).
        allow_outside: read wav paths that leave the corpus (as `training.data.CaptionDataset`).
    Returns:
        (image_emb [I, E], audio_emb [C, E], caption_image_index [C], model description, corpus root)
    Raises:
        ValueError: a model without a VGS branch, or a split without captions (naming its file).
    """
    from probes.models import corpus_of
    from training.data import CaptionDataset, load_split
    from training.data.spokencoco import split_path

    layered = as_layered_model(model)
    module = layered.module
    if not (hasattr(module, "encode_audio") and hasattr(module, "encode_image")):
        raise ValueError(
            f"{layered.description} has no speech-image branches: recall needs an SSLVGS"
        )
    from probes.protocol import normalises_input

    # Recall's one protocol (the paper's) z-normalises every waveform: SSLVGS.features does it.
    if not normalises_input(module):
        raise ValueError(
            f"{layered.description} does not z-normalise its input: recall needs an SSLVGS"
        )
    root = corpus_of(layered, corpus)
    if regions is None:
        regions = _recorded_regions(layered, root)
    if not load_split(root, split, allow_outside=allow_outside):
        raise ValueError(f"{split_path(root, split)}: the split has no images and no captions")
    dataset = CaptionDataset(
        root, split, regions, resample=resample, allow_outside=allow_outside,
        min_samples=layered.min_samples,
    )  # fmt: skip
    module.to(device)
    with bounded_memory(device):
        images, audio = embed_captions(
            module, dataset, batch_size=batch_size, device=device, progress=progress
        )
    return images, audio, dataset.caption_image_index.numpy(), layered.description, root


def _recorded_regions(layered: Any, root: Path) -> Any:
    """The region features the model's run was trained with, when `root` is the run's corpus."""
    from training.rundir import run_corpus, run_of, run_regions

    run = run_of(layered.checkpoint) if layered.checkpoint is not None else None
    if run is None or run_corpus(run) is None or Path(run_corpus(run)).resolve() != root.resolve():
        return None
    regions = run_regions(run)
    return [str(p) for p in regions] if regions else None
