"""Waveforms: read any soundfile-readable file as 16 kHz mono float32, write 16-bit PCM wav.

Resampling is polyphase (scipy.signal.resample_poly): exact rational ratios, no randomness and no
thread-count dependence, so the corpus generator can use it too and stay byte-reproducible.
"""

from __future__ import annotations

import functools
import io
import math
import os
import wave
from pathlib import Path

import numpy as np
import soundfile
import torch
from scipy.signal import firwin, resample_poly

__all__ = [
    "WavError",
    "MIN_SAMPLES",
    "check_samples",
    "read_wav",
    "wav_seconds",
    "resample",
    "wav_bytes",
    "resampled_position",
]


class WavError(ValueError):
    """An empty, too short or unreadable audio file; the message names the file."""


# The receptive field of wav2vec 2.0's CNN (and of the log-mel front end's 400-sample window): the
# fewest samples that give one frame. Models report their own (`min_samples`); this is the default.
MIN_SAMPLES = 400


def check_samples(
    path: str | os.PathLike, n_samples: int, min_samples: int, sample_rate: int
) -> None:
    """WavError naming `path` if its `n_samples` (at `sample_rate`) are fewer than `min_samples`,
    the samples the model needs for one frame: such audio has no frame of its own, and a model's
    convolutions fail on it or give it nothing. Every path that feeds audio to a model checks this
    (extraction, ABX, recall, training)."""
    if n_samples == 0:
        raise WavError(f"{path}: empty audio file (no samples)")
    if n_samples < min_samples:
        raise WavError(
            f"{path}: {n_samples} samples ({1000 * n_samples / sample_rate:.1f} ms), fewer than the "
            f"{min_samples} ({1000 * min_samples / sample_rate:.1f} ms) that the model needs for one frame"
        )


def resample(samples: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Resample float [T] (or [T, C]) from `source_rate` to `target_rate` Hz.

    Output length is ceil(T * target / source); a sample at position p in the input sits at
    p * target / source in the output (see `resampled_position`).
    """
    if source_rate == target_rate:
        return samples
    g = math.gcd(source_rate, target_rate)
    up, down = target_rate // g, source_rate // g
    # resample_poly's own filter, designed once per ratio: its design (firwin, kaiser) was half
    # the cost of resampling a 3 s utterance from espeak's 22050 Hz (1.48 ms -> 0.71 ms).
    inexact = np.issubdtype(samples.dtype, np.inexact)  # else resample_poly keeps it float64
    window = _lowpass(up, down).astype(samples.dtype if inexact else np.float64, copy=True)
    return resample_poly(samples, up, down, axis=0, window=window)


@functools.lru_cache(maxsize=16)
def _lowpass(up: int, down: int) -> np.ndarray:
    """The FIR filter resample_poly designs for (up, down) with its default Kaiser window."""
    max_rate = max(up, down)
    return firwin(2 * 10 * max_rate + 1, 1.0 / max_rate, window=("kaiser", 5.0))


def resampled_position(position: int, source_rate: int, target_rate: int) -> int:
    """The sample index that `position` (at source_rate) becomes at target_rate, rounded half up."""
    return (2 * position * target_rate + source_rate) // (2 * source_rate)


def read_wav(
    path: str | os.PathLike, sample_rate: int = 16000, *, resample_audio: bool = True
) -> torch.Tensor:
    """Read an audio file as float32 [T] in [-1, 1]: channels averaged, resampled to `sample_rate`.

    Raises FileNotFoundError for a missing file and WavError (a ValueError) for an empty or
    unreadable one, or one at another rate when `resample_audio` is False, naming the file.
    """
    path = Path(path)
    samples, rate = _checked(path, soundfile.read, dtype="float32", always_2d=True)
    if samples.shape[0] == 0:
        raise WavError(f"{path}: empty audio file (no samples)")
    if not resample_audio and rate != sample_rate:
        raise WavError(
            f"{path}: sampled at {rate} Hz, not {sample_rate} Hz; pass resample=True (--resample) "
            "to resample it"
        )
    mono = samples.mean(axis=1)
    mono = resample(mono, int(rate), sample_rate).astype(np.float32, copy=False)
    return torch.from_numpy(np.ascontiguousarray(mono))


def wav_seconds(path: str | os.PathLike) -> float:
    """Duration of an audio file from its header (no samples read); the errors of `read_wav`."""
    info = _checked(Path(path), soundfile.info)
    return info.frames / info.samplerate


def _checked(path: Path, read, **kwargs):
    """`read(path, **kwargs)`, with a missing or unreadable file reported under its name."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such audio file")
    try:
        return read(path, **kwargs)
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as error:
        raise WavError(f"{path}: unreadable audio file ({error})") from None


def wav_bytes(samples: np.ndarray, sample_rate: int) -> bytes:
    """16-bit PCM mono wav file bytes of int16 `samples` [T] (no timestamps: reproducible)."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(np.asarray(samples, dtype="<i2").tobytes())
    return buffer.getvalue()
