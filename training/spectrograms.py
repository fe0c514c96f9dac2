"""A process-wide memo of per-utterance log-mel spectrograms, for the log-mel front end on the CPU.

An utterance's log-mel spectrogram (z-normalised waveform -> |STFT|^2 -> mel -> log) has no learned
parameters: it is a pure function of its samples and of the front end's window and filterbank. The
small presets train for several epochs on the same captions and the reproduction trains nine models
on one corpus in each training process, so each caption's spectrogram was computed tens of times;
at `compact`'s size it cost 21 ms of a 350 to 500 ms step (batch 32 x 2.6 s, one thread).

`SpectrogramMemo` keeps them in memory, keyed by the SHA-256 of the utterance's float32 samples and
of the front end's window and filterbank, so a stale entry cannot be returned: a crop, a changed file
or another front end is another key. It is bounded (`SSLVGS_SPECTROGRAM_MEMO_MB`, default 1024 MB per
process; 0 turns it off): once full it stops adding, it never evicts. Whether an utterance is found in
it or not changes nothing in the numbers, since both paths compute one utterance at a time.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["SpectrogramMemo", "MEMO", "memo_budget"]

_ENV = "SSLVGS_SPECTROGRAM_MEMO_MB"
_DEFAULT_MB = 1024


def memo_budget() -> int:
    """Bytes the process-wide memo may hold: `SSLVGS_SPECTROGRAM_MEMO_MB` (default 1024) x 2^20."""
    raw = os.environ.get(_ENV, str(_DEFAULT_MB))
    try:
        megabytes = float(raw)
    except ValueError:
        raise ValueError(f"{_ENV}={raw!r} is not a number of megabytes") from None
    if megabytes < 0:
        raise ValueError(f"{_ENV}={raw!r} is negative")
    return int(megabytes * 2**20)


class SpectrogramMemo:
    """Spectrograms [n_mels, F] of utterances seen before, by content; at most `max_bytes` in all.

    `max_bytes` None reads the budget from the environment at each call, so a notebook can change it
    between calls. Safe to share between threads.
    """

    def __init__(self, max_bytes: int | None = None):
        self._max_bytes = max_bytes
        self._entries: dict[bytes, Tensor] = {}
        self._lock = threading.Lock()
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    @property
    def max_bytes(self) -> int:
        return memo_budget() if self._max_bytes is None else self._max_bytes

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Drop every entry and reset the counters."""
        with self._lock:
            self._entries.clear()
            self.bytes = self.hits = self.misses = 0

    def spectrogram(
        self, samples: Tensor, front_end: bytes, compute: Callable[[Tensor], Tensor]
    ) -> Tensor:
        """`compute(samples)` for one utterance samples [T] (float32, CPU), from the memo when these
        samples were seen with this `front_end` (a digest of everything else `compute` depends on)."""
        budget = self.max_bytes
        if budget <= 0:
            return compute(samples)
        digest = hashlib.sha256(front_end)
        digest.update(samples.detach().contiguous().numpy().data)
        key = digest.digest()
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self.hits += 1
                return found
            self.misses += 1
        value = compute(samples)
        size = value.numel() * value.element_size()
        with self._lock:
            if key not in self._entries and self.bytes + size <= budget:
                self._entries[key] = value
                self.bytes += size
        return value


MEMO = SpectrogramMemo()


def front_end_digest(*tensors: Tensor, settings: tuple = ()) -> bytes:
    """A digest of the tensors' values and the settings that, with the samples, decide a spectrogram."""
    digest = hashlib.sha256(repr(settings).encode())
    for tensor in tensors:
        digest.update(repr((tuple(tensor.shape), str(tensor.dtype))).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().data)
    return digest.digest()


def inference_safe(compute: Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    """`compute` run without a graph and outside inference mode, so that an entry made while probing
    (under `torch.inference_mode`) can be read later by a training step."""

    def run(samples: Tensor) -> Tensor:
        with torch.inference_mode(False), torch.no_grad():
            return compute(samples.clone() if samples.is_inference() else samples)

    return run
