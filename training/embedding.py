"""Retrieval embeddings of a caption split: the one function that the trainer's validation recall and
`probes.recall` both use, so that their numbers are the same numbers.

Captions are embedded in batches of similar duration (read from the wav headers), so little of each
batch is padding and no more than one batch of audio is in memory; images are embedded batch by batch
from their region features.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from training.data.captions import pad_wavs
from training.progress import progress_bar as tqdm

__all__ = ["embed_captions"]


@torch.no_grad()
def embed_captions(
    model: Any,
    dataset: Any,
    *,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Unmasked embeddings of every image and every caption of a `CaptionDataset`, in eval mode.

    Args:
        model: an SSLVGS (anything with `encode_audio(wav [B, T], lengths [B])` and
            `encode_image(feats [B, 36, D], boxes [B, 36, 4])`), left in the mode it was in.
        dataset: a `training.data.CaptionDataset`.
        batch_size: captions (and images) per forward pass: 64, the trainer's `eval_batch_size`.
            At 16 the forward of a compact model's test recall (5000 captions, one thread) took
            21.8 s against 17.4 s at 64, narrow models' small products paying per call; a batch holds
            captions of similar length, so memory goes with batch_size x the longest caption
            (lower it for long captions at the paper's width on a small machine).
    Returns:
        (images [I, E] float32, captions [C, E] float32), rows in the dataset's image and caption order.
    """
    was_training = model.training
    model.eval()
    try:
        order = np.argsort(dataset.durations(), kind="stable")
        audio: np.ndarray | None = None
        for start in tqdm(range(0, len(order), batch_size), desc=f"captions {dataset.split}",
                          unit="batch", disable=not progress):  # fmt: skip
            chosen = order[start : start + batch_size]
            wav, lengths = pad_wavs([dataset.wav(int(i)) for i in chosen])
            emb = model.encode_audio(wav.to(device), lengths.to(device))
            _check_finite(emb, [dataset.caption_wav(int(i)) for i in chosen], "caption")
            if audio is None:
                audio = np.empty((len(dataset), emb.shape[1]), dtype=np.float32)
            audio[chosen] = emb.float().cpu().numpy()
        images = []
        keys = dataset.image_keys
        for start in tqdm(range(0, len(keys), batch_size), desc=f"images {dataset.split}",
                          unit="batch", disable=not progress):  # fmt: skip
            pairs = [dataset.regions[key] for key in keys[start : start + batch_size]]
            feats = torch.stack([f for f, _ in pairs]).to(device)
            boxes = torch.stack([b for _, b in pairs]).to(device)
            emb = model.encode_image(feats, boxes)
            _check_finite(emb, keys[start : start + batch_size], "image")
            images.append(emb.float().cpu().numpy())
    finally:
        model.train(was_training)
    if audio is None:
        raise ValueError(f"{dataset.split_file}: the split has no captions")
    return np.concatenate(images), audio


def _check_finite(emb: torch.Tensor, names: list, what: str) -> None:
    """ValueError naming the first caption (its wav) or image (its key) whose embedding holds NaN
    or Inf: ranking would put it anywhere and make recall a wrong number, not an error."""
    bad = ~torch.isfinite(emb).all(dim=1)
    if bool(bad.any()):
        first = int(torch.nonzero(bad)[0])
        raise ValueError(
            f"{what} {names[first]}: its embedding holds NaN or Inf ({int(bad.sum())} of this "
            f"batch's {len(names)} {what}s); check its {'audio' if what == 'caption' else 'region features'}"
        )
