"""Spoken captions with their images' region features, as a torch Dataset, and its batch collation."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch.utils.data import Dataset

from training.data.audio import MIN_SAMPLES, check_samples, read_wav, wav_seconds
from training.data.regions import RegionError, RegionFeatures, open_regions
from training.data.spokencoco import caption_where, load_split, split_path

__all__ = ["CaptionDataset", "collate_captions", "pad_wavs"]


class CaptionDataset(Dataset):
    """Every caption of one split; item i -> dict(wav float32 [T] at 16 kHz, image_index int,
    image_key str, uttid, speaker, text, feats float32 [36, D], boxes float32 [36, 4]).

    The split file is whichever serves `split` (`training.data.spokencoco.split_path`). `regions` is
    an opened `RegionFeatures`, or any PATH `open_regions` takes (None: the corpus's own `regions/`
    folder). Audio at another rate than `sample_rate` is refused unless `resample`; wav paths that
    leave the split file's folder are refused unless `allow_outside`; captions shorter than
    `min_samples` (the model's receptive field: `SSLVGS.min_samples`) are refused by name, as they
    have no frame of their own. For retrieval, `image_keys`
    lists the split's images (image_index indexes it), `caption_image_index` is a long [N captions]
    tensor and `image_regions()` returns (feats [N images, 36, D], boxes [N images, 36, 4]).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str,
        regions: RegionFeatures | str | os.PathLike | list | None = None,
        sample_rate: int = 16000,
        *,
        resample: bool = False,
        allow_outside: bool = False,
        min_samples: int = MIN_SAMPLES,
    ) -> None:
        self.root = Path(root)
        self.min_samples = int(min_samples)
        self.split = split
        self.split_file = split_path(root, split)
        self.entries = load_split(root, split, allow_outside=allow_outside)
        if not isinstance(regions, RegionFeatures):
            regions = open_regions(regions, corpus=root)
        self.regions = regions
        self.sample_rate = sample_rate
        self.resample = resample
        self.image_keys = [entry["key"] for entry in self.entries]
        for entry in self.entries:
            if entry["key"] not in self.regions:
                raise RegionError(
                    f"{self.split_file}: entry {entry['entry']} (image {entry['image'].name}): no "
                    f"region features for {entry['key']!r} in {self.regions.origin}"
                )
        self.captions = [
            (image_index, k)
            for image_index, entry in enumerate(self.entries)
            for k in range(len(entry["captions"]))
        ]
        self.caption_image_index = torch.tensor([i for i, _ in self.captions], dtype=torch.long)
        self._durations: list[float] | None = None  # durations(), read once

    def __len__(self) -> int:
        return len(self.captions)

    def __getitem__(self, index: int) -> dict:
        image_index, k = self.captions[index]
        entry = self.entries[image_index]
        caption = entry["captions"][k]
        wav = self.wav(index)
        feats, boxes = self.regions[entry["key"]]
        return {
            "wav": wav,
            "image_index": image_index,
            "image_key": entry["key"],
            "uttid": caption["uttid"],
            "speaker": caption["speaker"],
            "text": caption["text"],
            "feats": feats,
            "boxes": boxes,
        }

    def wav(self, index: int) -> torch.Tensor:
        """Caption `index`'s samples [T] at the dataset's rate, checked, without its image's region
        features (retrieval embeds captions and images apart)."""
        image_index, k = self.captions[index]
        caption = self.entries[image_index]["captions"][k]
        try:
            wav = read_wav(caption["wav"], self.sample_rate, resample_audio=self.resample)
            check_samples(caption["wav"], len(wav), self.min_samples, self.sample_rate)
        except (OSError, ValueError) as error:
            where = f"{self.split_file}: {caption_where(caption)}"
            raise type(error)(f"{where}: {error}") from error
        return wav

    def caption_wav(self, index: int) -> Path:
        """The wav file of caption `index` (for messages)."""
        image_index, k = self.captions[index]
        return Path(self.entries[image_index]["captions"][k]["wav"])

    def durations(self) -> list[float]:
        """Seconds of audio of every caption, from the wav headers (no samples read); cached."""
        if self._durations is None:
            self._durations = []
            for image_index, k in self.captions:
                entry = self.entries[image_index]
                wav = entry["captions"][k]["wav"]
                try:
                    seconds = wav_seconds(wav)
                    samples = int(round(seconds * self.sample_rate))
                    check_samples(wav, samples, self.min_samples, self.sample_rate)
                except (OSError, ValueError) as error:  # as __getitem__: say where the caption is
                    where = f"{self.split_file}: {caption_where(entry['captions'][k])}"
                    raise type(error)(f"{where}: {error}") from error
                self._durations.append(seconds)
        return self._durations

    def image_regions(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Region features of every image of the split: feats [N, 36, D], boxes [N, 36, 4]."""
        pairs = [self.regions[key] for key in self.image_keys]
        return torch.stack([f for f, _ in pairs]), torch.stack([b for _, b in pairs])


def collate_captions(items: list[dict]) -> dict:
    """Batch items of CaptionDataset: wav [B, Tmax] (zero-padded), wav_lengths long [B],
    feats [B, 36, D], boxes [B, 36, 4], image_index long [B], plus the lists image_key, uttid,
    speaker and text."""
    wav, lengths = pad_wavs([item["wav"] for item in items])
    batch = {
        "wav": wav,
        "wav_lengths": lengths,
        "feats": torch.stack([item["feats"] for item in items]),
        "boxes": torch.stack([item["boxes"] for item in items]),
        "image_index": torch.tensor([item["image_index"] for item in items], dtype=torch.long),
    }
    for name in ("image_key", "uttid", "speaker", "text"):
        batch[name] = [item[name] for item in items]
    return batch


def pad_wavs(wavs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Waveforms [T_i] -> (wav [B, Tmax] zero-padded float32, lengths long [B])."""
    lengths = torch.tensor([w.shape[0] for w in wavs], dtype=torch.long)
    wav = torch.zeros(len(wavs), int(lengths.max()), dtype=torch.float32)
    for row, samples in enumerate(wavs):
        wav[row, : samples.shape[0]] = samples
    return wav, lengths
