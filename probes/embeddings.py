"""Retrieval embeddings of a corpus split: every caption through the audio branch, every image
through the image branch, batch by batch (region features are read per batch, never all at once)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import soundfile
import torch
from tqdm.auto import tqdm

from probes.models import as_layered_model, bounded_memory

__all__ = ["embed_split"]


def embed_split(
    model: Any,
    split: str,
    corpus: str | Path | None = None,
    *,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, str, Path]:
    """Embeddings of one split for recall@k.

    Args:
        model: checkpoint file, run directory or SSLVGS (it needs encode_audio and encode_image).
        corpus: corpus root; default: the one in the run's config.json.
    Returns:
        (image_emb [I, E], audio_emb [C, E], caption_image_index [C], model description, corpus root)
    Raises:
        ValueError: a model without a VGS branch, or a split without captions (naming its file).
    """
    from probes.api import corpus_of
    from training.data import CaptionDataset, collate_captions, load_split
    from training.data.spokencoco import split_path

    layered = as_layered_model(model)
    module = layered.module
    if not (hasattr(module, "encode_audio") and hasattr(module, "encode_image")):
        raise ValueError(
            f"{layered.description} has no speech-image branches: recall needs an SSLVGS"
        )
    root = corpus_of(layered, corpus)
    if not load_split(root, split):
        raise ValueError(f"{split_path(root, split)}: the split has no images and no captions")
    dataset = CaptionDataset(root, split)
    module.to(device)
    # Captions of similar duration are batched together, so little of each batch is padding.
    order = np.argsort([_n_samples(dataset, i) for i in range(len(dataset))], kind="stable")
    audio: np.ndarray | None = None
    with torch.inference_mode(), bounded_memory(device):
        for start in tqdm(range(0, len(order), batch_size), desc=f"captions {split}", unit="batch",
                          disable=not progress):  # fmt: skip
            chosen = order[start : start + batch_size]
            batch = collate_captions([dataset[int(i)] for i in chosen])
            emb = module.encode_audio(batch["wav"].to(device), batch["wav_lengths"].to(device))
            if audio is None:
                audio = np.empty((len(dataset), emb.shape[1]), dtype=np.float32)
            audio[chosen] = emb.float().cpu().numpy()
        images = []
        keys = dataset.image_keys
        for start in tqdm(range(0, len(keys), batch_size), desc=f"images {split}", unit="batch",
                          disable=not progress):  # fmt: skip
            pairs = [dataset.regions[key] for key in keys[start : start + batch_size]]
            feats = torch.stack([f for f, _ in pairs]).to(device)
            boxes = torch.stack([b for _, b in pairs]).to(device)
            images.append(module.encode_image(feats, boxes).float().cpu().numpy())
    owner = dataset.caption_image_index.numpy()
    return np.concatenate(images), audio, owner, layered.description, root


def _n_samples(dataset: Any, index: int) -> int:
    image_index, k = dataset.captions[index]
    return soundfile.info(str(dataset.entries[image_index]["captions"][k]["wav"])).frames
