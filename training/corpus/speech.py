"""The corpus's speech: one utterance (`speak`), and all of a build's, in this process or in several.

Each utterance's audio depends only on (seed, uttid, voice, variation): its realisation and its signals
come from its own random streams (`streams`), and the Synthesizer speaks each utterance from a pristine
espeak-ng state (training/corpus/espeak.py). So the utterances may be spoken in any order and split
between processes in any way: the files are the same bytes whatever `workers` is.

`speak_all` with more than one worker hands chunks of `CHUNK` utterances to a pool of worker processes
(started with "spawn": a fresh interpreter, nothing inherited from the caller's threads or libraries),
each with one Synthesizer, torch and the BLAS/OpenMP pools at one thread, Ctrl-C ignored (the caller
handles it) and an exit of its own if the caller dies. Every file is written atomically, so a build that
stops (an error, Ctrl-C, a kill) leaves only complete files and the next build finishes it.
"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.corpus.espeak import ESPEAK_SAMPLE_RATE, Synthesis, Synthesizer, Voice
from training.corpus.plan import Utterance
from training.corpus.variation import Realisation, Variation, draw_realisation, realise, to_rate
from training.data.alignments import write_alignment
from training.data.audio import wav_bytes
from training.fileio import write_bytes_atomic

__all__ = [
    "CHUNK",
    "MAX_DEFAULT_WORKERS",
    "SAMPLE_RATE",
    "UTTERANCES_PER_WORKER",
    "SpeechJob",
    "SynthesisError",
    "default_workers",
    "realisation",
    "refuse_in_a_starting_worker",
    "speak",
    "speak_all",
    "writing",
]

SAMPLE_RATE = 16000
CHUNK = 32  # utterances per task handed to a worker: the progress bar moves about every second
MAX_DEFAULT_WORKERS = 4
# Starting a worker costs a few CPU-seconds (a fresh interpreter importing numpy, scipy and torch);
# an utterance about 25 CPU-ms: the default gives a worker no fewer than this many utterances.
UTTERANCES_PER_WORKER = 256


class SynthesisError(RuntimeError):
    """An utterance could not be made, or a worker process stopped; the message says which."""


@dataclass(frozen=True)
class SpeechJob:
    """What every utterance of one build shares: the corpus root, the speakers' voices, the seed and
    the variation (None: clean)."""

    root: Path
    voices: dict[str, Voice]
    seed: int
    variation: Variation | None


@contextlib.contextmanager
def writing(path: Path) -> Iterator[None]:
    """Name `path` in an OSError that names no file (a full disk: "[Errno 28] No space left")."""
    try:
        yield
    except OSError as error:
        if error.filename is None and error.errno is not None:
            raise OSError(
                error.errno, f"{error.strerror} (writing the corpus)", str(path)
            ) from None
        raise


def streams(seed: int, utt: Utterance) -> tuple[np.random.Generator, np.random.Generator]:
    """The utterance's own streams: one for its realisation's parameters, one for its signals."""
    key = zlib.crc32(utt.uttid.encode())
    return np.random.default_rng([seed, 4, key, 0]), np.random.default_rng([seed, 4, key, 1])


def realisation(seed: int, utt: Utterance, voice: Voice, variation: Variation) -> Realisation:
    """The utterance's realisation (voice jitter, speed, room, noise), drawn from its own stream."""
    return draw_realisation(streams(seed, utt)[0], voice, variation, ESPEAK_SAMPLE_RATE)


def _to_corpus_rate(synthesis: Synthesis) -> tuple[np.ndarray, list[int]]:
    """int16 samples at 16 kHz and the phone bounds (len(phones) + 1, first 0, last T) moved along."""
    audio, bounds = to_rate(synthesis.samples, synthesis.starts, synthesis.sample_rate, SAMPLE_RATE)
    return np.clip(np.rint(audio), -32768, 32767).astype(np.int16), bounds


def speak(
    synthesizer: Synthesizer, root: Path, utt: Utterance, voice: Voice, *,
    seed: int = 0, variation: Variation | None = None,
) -> None:  # fmt: skip
    """Synthesise `utt` (realised under `variation`, or clean) and write its wav and alignment."""
    if variation is None:
        synthesis = synthesizer(utt.text, voice)
        samples, bounds = _to_corpus_rate(synthesis)
    else:
        drawn = realisation(seed, utt, voice, variation)
        synthesis = synthesizer(utt.text, drawn.voice)
        audio, bounds = to_rate(synthesis.samples, synthesis.starts, drawn.source_rate, SAMPLE_RATE)
        samples = realise(audio, drawn, streams(seed, utt)[1], SAMPLE_RATE)
    if any(b >= e for b, e in zip(bounds[:-1], bounds[1:], strict=True)):
        raise SynthesisError(f"a phone of {utt.uttid} ({utt.text!r}) vanished when resampling")
    with writing(root / utt.wav):
        write_bytes_atomic(root / utt.wav, wav_bytes(samples, SAMPLE_RATE))
    with writing(root / utt.alignment):
        write_alignment(root / utt.alignment, bounds, list(synthesis.phones), SAMPLE_RATE)


def _naming(utt: Utterance, error: Exception) -> Exception:
    """`error` if it names the utterance already (a file error names the wav or alignment, whose name
    is the utterance id), else one that does: an OSError stays an OSError, anything else becomes a
    SynthesisError (both cross a process boundary intact)."""
    if isinstance(error, OSError | SynthesisError) and utt.uttid in str(error):
        return error
    if isinstance(error, OSError) and error.errno is not None:
        return OSError(error.errno, f"{error.strerror} (utterance {utt.uttid})", error.filename)
    return SynthesisError(f"utterance {utt.uttid} ({utt.text!r}): {type(error).__name__}: {error}")


def _speak_one(synthesizer: Synthesizer, job: SpeechJob, utt: Utterance) -> None:
    try:
        speak(synthesizer, job.root, utt, job.voices[utt.speaker], seed=job.seed,
              variation=job.variation)  # fmt: skip
    except Exception as error:
        named = _naming(utt, error)
        if named is error:
            raise
        raise named from error


def refuse_in_a_starting_worker() -> None:
    """Raise if this process is a worker still starting: one that runs the caller's script again
    (a "spawn" worker does, when the script has no `if __name__ == "__main__":`) would build the
    corpus again in every worker and wait for ever on the folder's lock, which the caller holds."""
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise RuntimeError(
            "build_corpus was called while a worker process started: the script that builds the "
            'corpus must do it under `if __name__ == "__main__":` (worker processes import it), '
            "or pass workers=1"
        )


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_workers(todo: int) -> int:
    """Worker processes for `todo` utterances when none are asked for: one more than the cores this
    process may run on, at most MAX_DEFAULT_WORKERS, and at most one per UTTERANCES_PER_WORKER
    utterances (a small build is quicker in this process than with workers to start); at least one.

    One more than the cores: a worker and its espeak-ng helper take turns (a request, a fork, an
    answer through pipes), so one worker keeps a core busy only most of the time. The default
    corpus (10,300 utterances, 2 cores, load 0.6 before): 136.8 s with 2 workers, 126.7 s with 3.
    """
    return max(1, min(_cores() + 1, MAX_DEFAULT_WORKERS, todo // UTTERANCES_PER_WORKER))


def speak_all(
    job: SpeechJob,
    todo: list[Utterance],
    workers: int | None = None,
    advance: Callable[[int], object] = lambda n: None,
) -> None:
    """Speak every utterance of `todo` into `job.root`, calling `advance(n)` as n more are done.

    workers: processes (None: `default_workers(len(todo))`; never more than there are chunks of
    CHUNK utterances); 1 speaks them in this process with one Synthesizer, as builds always did.
    An utterance that fails stops the build with an error that names it (SynthesisError, or the
    OSError of a file, which names the file); the pool is shut down before it is raised, as it is
    on Ctrl-C, after the chunks already running end (every file written is complete).
    """
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    chunks = [todo[i : i + CHUNK] for i in range(0, len(todo), CHUNK)]
    count = min(default_workers(len(todo)) if workers is None else workers, len(chunks))
    if count <= 1:
        with Synthesizer() as synthesizer:
            for utt in todo:
                _speak_one(synthesizer, job, utt)
                advance(1)
        return
    pool = ProcessPoolExecutor(
        count,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(job,),
    )
    try:
        with _sigint_held():  # the workers start (on the first submits) with Ctrl-C blocked
            futures = [pool.submit(_speak_chunk, chunk) for chunk in chunks]
        for future in as_completed(futures):
            advance(future.result())
    except BrokenProcessPool as error:
        pool.shutdown(wait=True, cancel_futures=True)
        raise SynthesisError(
            f"a speech worker process stopped ({error}; what it printed, if anything, is above); "
            "run the build again to finish it"
        ) from error
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


@contextlib.contextmanager
def _sigint_held() -> Iterator[None]:
    """SIGINT blocked in this thread for the block. Processes and threads started meanwhile inherit
    the blocked mask (it survives fork and exec), so a worker never gets a KeyboardInterrupt while it
    imports its modules; and a Ctrl-C that arrives meanwhile stays pending and is delivered here as
    the block ends (a KeyboardInterrupt then), not lost as it would be if SIGINT were ignored."""
    if not hasattr(signal, "pthread_sigmask"):  # not POSIX: the workers ignore it once started
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


# In a worker process: its Synthesizer and the job, set by `_start_worker`.
_worker: tuple[Synthesizer, SpeechJob] | None = None


def _start_worker(job: SpeechJob) -> None:
    """A pool worker's initializer: one thread, no Ctrl-C of its own, one Synthesizer."""
    global _worker
    # Ctrl-C reaches the whole process group: the caller stops the pool. Set before the Synthesizer
    # starts its helper process, which inherits it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _one_thread()
    _exit_with_parent()
    synthesizer = Synthesizer()
    atexit.register(synthesizer.close)  # a worker that ends normally stops its helper first
    _worker = (synthesizer, job)


def _one_thread() -> None:
    """torch and the BLAS / OpenMP pools at one thread: workers, one per core, must not
    oversubscribe the cores."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(1)


def _exit_with_parent() -> None:
    """End this worker if the process that started it dies (a kill -9 of the build): nothing is left
    running. Its Synthesizer's helper then ends too (its input closes)."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _speak_chunk(chunk: list[Utterance]) -> int:
    """In a worker: speak `chunk`; returns how many were spoken."""
    if _worker is None:
        raise SynthesisError("a speech worker was not started")
    synthesizer, job = _worker
    for utt in chunk:
        _speak_one(synthesizer, job, utt)
    return len(chunk)
