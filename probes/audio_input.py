"""The audio a forward pass takes, and the checks made before the model runs: each
utterance's length read from its header (`audio_length`), a batch read and padded
(`load_wav_batch`), utterances too short for one frame warned about (`ShortAudioWarning`) and
one too long for memory refused (`forward_bytes`, `memory_budget`, `AudioTooLongError`).

Separate from extraction (activations.py): the ABX fast path (analysis.gridding.abx_fast_path)
reads and checks audio the same way without extracting into a store.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import soundfile
import torch

from probes.models import LayeredModel
from probes.sources import Utterance

__all__ = [
    "ShortAudioWarning",
    "warn_short",
    "forward_bytes",
    "memory_budget",
    "AudioTooLongError",
    "refuse_too_long",
    "audio_length",
    "load_wav_batch",
]


class ShortAudioWarning(UserWarning):
    """Utterances too short for one frame of the model, stored with no frames; names them."""


def warn_short(utterances: list[Utterance], n_samples: list[int], layered: LayeredModel) -> None:
    """ShortAudioWarning naming the utterances shorter than the model's receptive field."""
    import warnings

    shown = ", ".join(
        f"{u.wav} ({n} samples)" for u, n in zip(utterances[:3], n_samples[:3], strict=True)
    )
    more = f" and {len(utterances) - 3} more" if len(utterances) > 3 else ""
    warnings.warn(
        f"{len(utterances)} utterances are shorter than the {layered.min_samples} samples that "
        f"{layered.description} needs for one frame and get no frames: {shown}{more}",
        ShortAudioWarning,
        stacklevel=4,
    )


# The front end's first convolution (wav2vec 2.0: 512 channels, stride 5) and what it keeps alive
# (output, norm, activation), and bytes per attention score (float32 scores and softmax).
_FRONT_CHANNELS, _FRONT_STRIDE, _FRONT_COPIES, _ATTENTION_COPIES = 512, 5, 3, 2


def forward_bytes(layered: LayeredModel, n_samples: int) -> int:
    """About the peak bytes of one utterance of `n_samples` through `layered` alone (float32):
    the front end's first convolution, one layer's attention scores (frames^2 x heads, heads
    = dim / 64) and the hidden states of every layer. An estimate to refuse what cannot run, not a
    measurement: attention grows with the square of the length (10 min of audio at 50 Hz is 30k
    frames, 43 GB of scores for a base model)."""
    frames = int(n_samples * layered.frame_rate / layered.sample_rate) + 1
    heads = max(1, layered.dim // 64)
    front = (n_samples // _FRONT_STRIDE) * _FRONT_CHANNELS * _FRONT_COPIES
    attention = frames * frames * heads * _ATTENTION_COPIES
    states = (layered.num_layers + 1) * frames * layered.dim
    return 4 * (front + attention + states)


def memory_budget(device: str | torch.device = "cpu") -> int:
    """Bytes a forward pass may take: $SSLVGS_MEMORY_GB if set, else the device's free memory
    (MemAvailable of /proc/meminfo on the CPU; 16 GiB where it cannot be read)."""
    import os

    if os.environ.get("SSLVGS_MEMORY_GB"):
        return int(float(os.environ["SSLVGS_MEMORY_GB"]) * 2**30)
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 16 * 2**30


class AudioTooLongError(ValueError):
    """An utterance whose forward pass would not fit in memory; names it, its length and the need."""


def refuse_too_long(
    layered: LayeredModel, utterances: Sequence[Utterance], n_samples: Sequence[int], device: Any
) -> None:
    """AudioTooLongError naming the longest utterance if its forward pass alone needs more than
    `memory_budget`: refused before the model runs, rather than dying in an allocation error."""
    if not n_samples:
        return
    longest = max(range(len(n_samples)), key=lambda i: n_samples[i])
    need, budget = forward_bytes(layered, n_samples[longest]), memory_budget(device)
    if need > budget:
        seconds = n_samples[longest] / layered.sample_rate
        raise AudioTooLongError(
            f"{utterances[longest].wav}: {seconds:.1f} s of audio needs about {need / 2**30:.1f} GiB "
            f"for one forward pass of {layered.description} (attention over its "
            f"{int(seconds * layered.frame_rate)} frames grows with their square), more than the "
            f"{budget / 2**30:.1f} GiB available on {device}; cut it into utterances of a few "
            "seconds to tens of seconds (as ZeroSpeech and LibriSpeech are), or set the budget "
            "with the environment variable SSLVGS_MEMORY_GB"
        )


def audio_length(utt: Utterance, sample_rate: int, *, resample: bool = False) -> int:
    """The number of samples of ``utt``'s wav at ``sample_rate`` (the model's), read from its header.

    Audio at another rate is refused (ValueError naming the file) unless ``resample``: then its
    length once resampled. ``plan_batches`` takes these lengths.
    """
    try:
        info = soundfile.info(str(utt.wav))
    except RuntimeError as err:
        raise ValueError(f"{utt.wav}: not a readable audio file ({err})") from err
    if info.samplerate == sample_rate:
        return int(info.frames)
    if not resample:
        raise ValueError(
            f"{utt.wav} is sampled at {info.samplerate} Hz but the model takes {sample_rate} Hz audio; "
            "pass resample=True (--resample) to resample it"
        )
    return int(round(info.frames * sample_rate / info.samplerate))


def load_wav_batch(
    utterances: list[Utterance], sample_rate: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch of audio as the model takes it (the batches of ``plan_batches``).

    Returns:
        waveforms [B, Tmax] float32, mono at ``sample_rate``, zero-padded after each utterance;
        lengths [B] int64, the samples of each utterance.
    """
    from training.data import read_wav

    waves = [read_wav(utt.wav, sample_rate) for utt in utterances]
    lengths = torch.tensor([len(w) for w in waves])
    batch = torch.zeros(len(waves), int(lengths.max()))
    for row, wave in enumerate(waves):
        batch[row, : len(wave)] = wave
    return batch, lengths
