"""The trainer's view of the data: which captions form each step's batch, and how each is cropped.

Everything here is a function of (seed, epoch, caption index), so a resumed run sees exactly the
batches, crops and random draws of an uninterrupted one, and every DDP process can cut its own slice.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = [
    "sample_seed",
    "EpochView",
    "epoch_batches",
    "warmup_linear",
    "caption_durations",
    "collate_with_seeds",
]


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of every random draw made for caption `index` in `epoch`."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1, np.uint64)[0])


class EpochView(Dataset):
    """The training captions as seen in one epoch: random crops to max_seconds, each with its seed."""

    def __init__(self, captions: Dataset, seed: int, epoch: int, max_samples: int):
        self.captions, self.seed, self.epoch, self.max_samples = (
            captions,
            seed,
            epoch,
            max_samples,
        )

    def __len__(self) -> int:
        return len(self.captions)

    def __getitem__(self, index: int) -> dict:
        item = dict(self.captions[index])
        key = sample_seed(self.seed, self.epoch, index)
        wav = item["wav"]
        if len(wav) > self.max_samples:
            start = int(
                np.random.default_rng([key, 1]).integers(0, len(wav) - self.max_samples + 1)
            )
            item["wav"] = wav[start : start + self.max_samples]
        item["sample_seed"] = key
        return item


def epoch_batches(
    n: int,
    batch_size: int,
    seed: int,
    epoch: int,
    lengths: list[float] | None = None,
    bucket_batches: int = 0,
) -> list[list[int]]:
    """The epoch's global batches: a permutation seeded by (seed, epoch), the last partial batch dropped.

    With `lengths` (seconds per caption) and bucket_batches > 0, each run of bucket_batches batches of
    the permutation is sorted by length before it is cut into batches, and the batches are shuffled:
    a batch then holds captions of similar length, so little of it is padding (24% of a random batch
    of 32 on the embedded corpus, 4% bucketed), while which captions meet in a batch stays random.
    """
    rng = np.random.default_rng([seed, epoch, 7])
    order = rng.permutation(n)[: n - n % batch_size]
    if lengths is not None and bucket_batches > 0:
        lengths = np.asarray(lengths)
        chunk = bucket_batches * batch_size
        order = np.concatenate(
            [
                part[np.argsort(lengths[part], kind="stable")]
                for part in np.split(order, range(chunk, len(order), chunk))
            ]
        )
        batches = order.reshape(-1, batch_size)
        order = batches[rng.permutation(len(batches))].reshape(-1)
    order = order.tolist()
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def warmup_linear(total_steps: int, warmup_fraction: float):
    """LR multiplier: linear warm-up over warmup_fraction of the stage, then linear decay to 0."""
    warmup = max(1, int(round(warmup_fraction * total_steps)))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return factor


def caption_durations(captions: Dataset) -> list[float]:
    """Seconds per caption of a CaptionDataset or a Subset of one."""
    if isinstance(captions, torch.utils.data.Subset):
        every = caption_durations(captions.dataset)
        return [every[i] for i in captions.indices]
    return captions.durations()


def collate_with_seeds(items: list[dict]) -> dict:
    from training.data import collate_captions

    batch = collate_captions(items)
    batch["sample_seed"] = [item["sample_seed"] for item in items]
    return batch
