"""Validation recall inside the trainer: embed a split's captions and images, rank, count hits.

Recall itself is `probes.retrieval.recall_at_k` (imported lazily: training does not depend on probes
at import time), so the trainer's numbers are the probes' numbers.
"""

from __future__ import annotations

import torch

__all__ = ["embed_split", "validation_recall"]


@torch.no_grad()
def embed_split(model, dataset, batch_size: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(image embeddings [I, E], caption embeddings [C, E]) of a CaptionDataset, unmasked, in eval mode.

    Captions are batched by length so that little of each batch is padding.
    """
    from training.data import collate_captions

    was_training = model.training
    model.eval()
    feats, boxes = dataset.image_regions()
    images = torch.cat(
        [
            model.encode_image(
                feats[i : i + batch_size].to(device), boxes[i : i + batch_size].to(device)
            )
            .float()
            .cpu()
            for i in range(0, len(feats), batch_size)
        ]
    )
    items = [dataset[i] for i in range(len(dataset))]
    order = sorted(range(len(items)), key=lambda i: len(items[i]["wav"]))
    audio = torch.empty(len(items), images.shape[1])
    for start in range(0, len(order), batch_size):
        chosen = order[start : start + batch_size]
        batch = collate_captions([items[i] for i in chosen])
        emb = model.encode_audio(batch["wav"].to(device), batch["wav_lengths"].to(device))
        audio[chosen] = emb.float().cpu()
    model.train(was_training)
    return images, audio


def validation_recall(
    model, dataset, batch_size: int, device: str, k: tuple[int, ...] = (1, 5, 10)
) -> dict[str, float]:
    """{"speech_to_image_r1": ..., "image_to_speech_r10": ...} in 0..1 on `dataset` (the val split)."""
    from probes.retrieval import recall_at_k

    images, audio = embed_split(model, dataset, batch_size, device)
    result = recall_at_k(images, audio, dataset.caption_image_index, k=k)
    return {
        f"{direction}_r{kk}": float(result.sel(direction=direction, k=kk))
        for direction in result.direction.values
        for kk in result.k.values
    }
