"""Speech <-> image retrieval recall@k, as in the paper, in bounded memory.

Score of (image i, caption c) = image_emb[i] . audio_emb[c] (plain dot product, docs/model.md).
- speech -> image: caption c's query hits at k if its image is among the top k images;
- image -> speech: image i's query hits at k if any of its captions is among the top k captions.
With `folds` > 1 the images are cut into that many consecutive groups of (nearly) equal size and every
query ranks only the candidates of its own group: COCO's "1k" protocol (its 5,000 test images as 5
folds of 1,000, recall averaged over the folds), which keeps recall@k on the scale of one fold's size
while every image of the split asks its queries.
Ties count against the query: the rank of the right answer is the number of wrong answers scoring
at least as high as it (0 = first), so a collapsed model that scores everything alike gets recall 0,
not a lucky draw. Scores are computed block by block (images x captions), never as a full matrix.
These are pure functions of embeddings: the trainer's validation recall and `probes.recall` share them.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral
from typing import Any

import numpy as np
import torch
import xarray as xr

__all__ = ["retrieval_ranks", "recall_at_k", "image_folds", "DIRECTIONS"]

DIRECTIONS = ("speech_to_image", "image_to_speech")


def image_folds(n_images: int, folds: int = 1) -> np.ndarray:
    """[I] the fold of each image: `folds` consecutive groups whose sizes differ by at most one
    (image i is in fold i * folds // I)."""
    if not isinstance(folds, Integral) or folds < 1:
        raise ValueError(f"folds must be a positive integer, not {folds!r}")
    if n_images and folds > n_images:
        raise ValueError(f"{folds} folds of {n_images} images: a fold would have no image")
    return np.arange(n_images, dtype=np.int64) * int(folds) // max(n_images, 1)


def retrieval_ranks(
    image_emb: Any,
    audio_emb: Any,
    caption_image_index: Any,
    *,
    folds: int = 1,
    block_images: int = 1024,
    block_captions: int = 8192,
) -> tuple[np.ndarray, np.ndarray]:
    """Rank of the right answer of every query, ties counted against it.

    Args:
        image_emb: [I, E] image embeddings.
        audio_emb: [C, E] caption embeddings.
        caption_image_index: [C] the image of each caption (0..I-1).
        folds: rank within `image_folds(I, folds)` (a caption belongs to its image's fold).
        block_images, block_captions: block of the score matrix computed at once (memory bound).
    Returns:
        (speech_rank [C], image_rank [I]) int64; image_rank is -1 for an image without captions
        (it still competes as a wrong answer for speech queries, but asks no query of its own).
    """
    images = torch.as_tensor(np.asarray(image_emb))
    audio = torch.as_tensor(np.asarray(audio_emb)).to(images.dtype)
    owner = torch.as_tensor(np.asarray(caption_image_index), dtype=torch.long)
    n_images, n_captions = images.shape[0], audio.shape[0]
    if owner.shape != (n_captions,):
        raise ValueError(
            f"caption_image_index has shape {tuple(owner.shape)}, expected ({n_captions},)"
        )
    if n_captions and (owner.min() < 0 or owner.max() >= n_images):
        raise ValueError(f"caption_image_index must lie in 0..{n_images - 1}")
    image_fold = torch.as_tensor(image_folds(n_images, folds))
    caption_fold = image_fold[owner]

    def blocks():
        # The same block calls in both passes: a score compared with the right answer's is the
        # very number the right answer was computed as, so exact ties stay exact.
        for i0 in range(0, n_images, block_images):
            i1 = min(i0 + block_images, n_images)
            for c0 in range(0, n_captions, block_captions):
                c1 = min(c0 + block_captions, n_captions)
                scores = images[i0:i1] @ audio[c0:c1].T
                own = owner[c0:c1][None, :] == torch.arange(i0, i1)[:, None]
                rivals = ~own
                if folds > 1:  # a pair across folds never competes
                    rivals &= caption_fold[None, c0:c1] == image_fold[i0:i1, None]
                yield i0, i1, c0, c1, scores, own, rivals

    right = torch.full((n_captions,), float("nan"), dtype=images.dtype)
    for _, _, c0, _, scores, own, _ in blocks():
        rows, cols = own.nonzero(as_tuple=True)
        right[c0 + cols] = scores[rows, cols]
    best = torch.full((n_images,), float("-inf"), dtype=images.dtype)
    best = best.scatter_reduce(0, owner, right, reduce="amax")

    speech_rank = torch.zeros(n_captions, dtype=torch.long)
    image_rank = torch.zeros(n_images, dtype=torch.long)
    for i0, i1, c0, c1, scores, _, rivals in blocks():
        speech_rank[c0:c1] += ((scores >= right[None, c0:c1]) & rivals).sum(0)
        image_rank[i0:i1] += ((scores >= best[i0:i1, None]) & rivals).sum(1)
    has_captions = torch.bincount(owner, minlength=n_images) > 0
    image_rank[~has_captions] = -1
    return speech_rank.numpy(), image_rank.numpy()


def recall_at_k(
    image_emb: Any,
    audio_emb: Any,
    caption_image_index: Any,
    k: Sequence[int] = (1, 5, 10),
    *,
    bootstrap: int = 0,
    confidence: float = 0.95,
    seed: int = 0,
    folds: int = 1,
    **block_options: int,
) -> xr.DataArray:
    """Recall@k in both directions from embeddings (a pure function; the trainer reuses it).

    Args:
        image_emb: [I, E]; audio_emb: [C, E]; caption_image_index: [C] image of each caption.
        k: cut-offs.
        bootstrap: number of resamples of images (with their captions) for a percentile interval;
            0 for none.
        folds: rank within this many consecutive groups of images (`image_folds`; COCO's 1k
            protocol is 5 folds of its 5k test images); recall is then the mean over every query
            of every fold.
    Returns:
        DataArray (direction, k) of recall in 0..1; with bootstrap, coordinates `low` and `high`
        (same dims) hold the interval.
    """
    ks = _checked_ks(k)
    for name, emb in (("image", image_emb), ("caption", audio_emb)):
        finite = np.isfinite(np.asarray(emb)).all(axis=-1)
        if not finite.all():
            raise ValueError(
                f"{name} embedding {int(np.argmin(finite))} holds NaN or Inf "
                f"({int((~finite).sum())} of {len(finite)}): recall would rank it anywhere"
            )
    speech_rank, image_rank = retrieval_ranks(
        image_emb, audio_emb, caption_image_index, folds=folds, **block_options
    )
    owner = np.asarray(caption_image_index, dtype=np.int64)
    speech_hits = speech_rank[:, None] < np.asarray(ks)[None, :]  # [C, K]
    queries = image_rank >= 0
    image_hits = (image_rank[:, None] < np.asarray(ks)[None, :]) & queries[:, None]  # [I, K]
    values = np.stack([speech_hits.mean(0), image_hits[queries].mean(0)])
    result = xr.DataArray(
        values,
        dims=("direction", "k"),
        coords={"direction": list(DIRECTIONS), "k": ks},
        name="recall",
        attrs={
            "images": int(len(image_rank)),
            "captions": int(len(speech_rank)),
            "folds": int(folds),
            "ties": "pessimistic",
        },
    )
    if bootstrap:
        low, high = _bootstrap(speech_hits, image_hits, owner, queries, bootstrap, confidence, seed)
        result = result.assign_coords(
            low=(("direction", "k"), low), high=(("direction", "k"), high)
        )
        result.attrs.update(bootstrap=bootstrap, confidence=confidence, seed=seed)
    return result


def _checked_ks(k: int | Sequence[int]) -> list[int]:
    ks = [k] if isinstance(k, Integral) else list(k)
    if not ks or any(not isinstance(v, Integral) or v < 1 for v in ks):
        raise ValueError(f"k must be positive integers, not {k!r}")
    return [int(v) for v in ks]


def _bootstrap(
    speech_hits: np.ndarray,
    image_hits: np.ndarray,
    owner: np.ndarray,
    queries: np.ndarray,
    draws: int,
    confidence: float,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval over resamples of the images that ask queries, captions following them."""
    rng = np.random.default_rng(seed)
    n_images = len(image_hits)
    candidates = np.flatnonzero(queries)
    # Per image: hits of its captions summed, and its number of captions.
    caption_hits = np.zeros((n_images, speech_hits.shape[1]))
    np.add.at(caption_hits, owner, speech_hits)
    n_captions = np.bincount(owner, minlength=n_images).astype(float)
    estimates = np.empty((draws, 2, speech_hits.shape[1]))
    for draw in range(draws):
        weight = np.bincount(rng.choice(candidates, len(candidates)), minlength=n_images)
        estimates[draw, 0] = weight @ caption_hits / (weight @ n_captions)
        estimates[draw, 1] = weight @ image_hits / weight.sum()
    tail = (1 - confidence) / 2 * 100
    return np.percentile(estimates, tail, axis=0), np.percentile(estimates, 100 - tail, axis=0)
