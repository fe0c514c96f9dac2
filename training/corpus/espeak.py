"""espeak-ng through ctypes, on the library that the `espeakng-loader` wheel ships.

Two things are needed from espeak-ng: speech with exact phone boundaries (the library's phoneme events
carry the sample where each phone starts) and the phones espeak-ng reports for a text
(`espeak_TextToPhonemes`), which the tests compare with the events.

espeak-ng keeps synthesis state in C globals that survive from one utterance to the next (the pitch
flutter, noise generators, even `espeak_Terminate` + `espeak_Initialize` does not clear them), so the
same text spoken twice in one process gives different samples. To make every utterance a function of
its text and voice only (what "same seed, same bytes" and resumable generation need), synthesis runs
in a small helper process that initialises espeak-ng once and forks a fresh child per utterance: every
child starts from the same pristine state. This file is that helper's program too (run as a script it
imports nothing from this package, so the helper stays small and forks fast).

Phones are IPA as espeak-ng prints them, with the stress marks removed; pauses are "SIL".
"""

from __future__ import annotations

import ctypes
import json
import os
import struct
import subprocess
import sys
import threading
from dataclasses import dataclass

import espeakng_loader
import numpy as np

__all__ = [
    "ESPEAK_SAMPLE_RATE",
    "SILENCE",
    "EspeakError",
    "Voice",
    "Synthesis",
    "Synthesizer",
    "available_variants",
    "events_to_phones",
    "strip_stress",
    "text_to_phones",
]

ESPEAK_SAMPLE_RATE = 22050
SILENCE = "SIL"
STRESS_MARKS = "ˈˌ"

# speak_lib.h constants.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS = 0x0001
_INIT_PHONEME_IPA = 0x0002
_INIT_DONT_EXIT = 0x8000
_EVENT_LIST_TERMINATED = 0
_EVENT_PHONEME = 7
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_ENDPAUSE = 0x1000
_PARAM_RATE, _PARAM_PITCH, _PARAM_RANGE = 1, 3, 4
_PHONEMES_IPA = 0x02


class EspeakError(RuntimeError):
    """espeak-ng refused a request (unknown voice, synthesis failure, helper process died)."""


@dataclass(frozen=True)
class Voice:
    """An espeak-ng voice: a language voice with an optional variant ("en-us+f3"), pitch 0-100
    (espeak's default 50), pitch range 0-100 (default 50) and rate in words per minute (default 175)."""

    name: str
    pitch: int = 50
    rate: int = 175
    range: int = 50


@dataclass(frozen=True)
class Synthesis:
    """One utterance at ESPEAK_SAMPLE_RATE.

    samples: int16 [T]. starts: int64 [P], the sample where each phone starts (starts[0] == 0,
    increasing); phone i spans starts[i] .. starts[i + 1] (the last one ends at T). phones: P labels.
    """

    samples: np.ndarray
    starts: np.ndarray
    phones: tuple[str, ...]
    sample_rate: int = ESPEAK_SAMPLE_RATE


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


class _Library:
    """The process-wide espeak-ng instance. espeak-ng is global state: one call at a time (`lock`)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self.lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        options = _INIT_PHONEME_EVENTS | _INIT_PHONEME_IPA | _INIT_DONT_EXIT
        data = espeakng_loader.get_data_path().encode()
        rate = self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data, options)
        if rate != ESPEAK_SAMPLE_RATE:
            raise EspeakError(f"espeak-ng initialised at {rate} Hz, expected {ESPEAK_SAMPLE_RATE}")
        self._chunks: list[bytes] = []
        self._events: list[tuple[int, str]] = []
        self._callback = _CALLBACK(self._collect)  # kept referenced: the C side holds the pointer
        self.lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav, count, events) -> int:
        if count > 0:
            self._chunks.append(ctypes.string_at(wav, 2 * count))
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            if events[i].type == _EVENT_PHONEME:
                name = events[i].id.string.decode("utf-8", errors="replace")
                self._events.append((events[i].sample, name))
            i += 1
        return 0

    def set_voice(self, voice: Voice) -> None:
        if self.lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
            raise EspeakError(f"espeak-ng has no voice {voice.name!r}")
        for parameter, value in ((_PARAM_RATE, voice.rate), (_PARAM_PITCH, voice.pitch)):
            self.lib.espeak_SetParameter(parameter, int(value), 0)
        self.lib.espeak_SetParameter(_PARAM_RANGE, int(voice.range), 0)

    def list_voices(self) -> None:
        """Read espeak-ng's voice list (every file under voices/ and lang/) into the library.

        Selecting a voice by name reads that list first if it is empty, and the list is all it
        keeps: reading it here, before the helper forks, leaves each child's synthesis exactly as
        it was (the same bytes; tests/test_corpus_variation.py pins them) and spares every child
        about 290 file reads, a third of an utterance's time (7.6 against 10.6 ms per utterance,
        200 captions).
        """
        with self.lock:
            self.lib.espeak_ListVoices.restype = ctypes.c_void_p
            self.lib.espeak_ListVoices(None)

    def synthesize(self, text: str, voice: Voice) -> tuple[bytes, list[tuple[int, str]]]:
        with self.lock:
            self.set_voice(voice)
            self._chunks, self._events = [], []
            self.lib.espeak_ng_SetRandSeed(ctypes.c_long(0))
            data = text.encode() + b"\0"
            flags = _CHARS_UTF8 | _ENDPAUSE
            status = self.lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, flags, None, None)
            if status != 0 or self.lib.espeak_Synchronize() != 0:
                raise EspeakError(f"espeak_Synth failed (status {status}) on {text!r}")
            return b"".join(self._chunks), self._events

    def text_to_phonemes(self, text: str, voice: Voice) -> list[str]:
        """espeak-ng's phonemes, one string per clause: phones separated by "_", words by " "."""
        with self.lock:
            self.set_voice(voice)  # espeak_TextToPhonemes crashes without a voice
            pointer = ctypes.c_char_p(text.encode())
            address = ctypes.cast(ctypes.pointer(pointer), ctypes.POINTER(ctypes.c_void_p))
            clauses = []
            while pointer.value:
                mode = _PHONEMES_IPA | (ord("_") << 8)
                clauses.append(self.lib.espeak_TextToPhonemes(address, _CHARS_UTF8, mode).decode())
            return clauses


_library: _Library | None = None
_library_guard = threading.Lock()


def _get_library() -> _Library:
    global _library
    with _library_guard:
        if _library is None:
            _library = _Library()
        return _library


def strip_stress(phone: str) -> str:
    """The phone without espeak-ng's stress marks."""
    return "".join(c for c in phone if c not in STRESS_MARKS)


def text_to_phones(text: str, voice: Voice | str = "en") -> list[str]:
    """The phones espeak-ng reports for `text` in `voice` (stress stripped, no pauses), in order."""
    voice = Voice(voice) if isinstance(voice, str) else voice
    clauses = _get_library().text_to_phonemes(text, voice)
    return [strip_stress(p) for c in clauses for w in c.split() for p in w.split("_") if p]


def events_to_phones(
    events: list[tuple[int, str]], length: int
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Phoneme events (sample, name) -> phones that tile [0, length): starts [P] and labels.

    A phone lasts until the next event. Empty names are pauses ("SIL"); consecutive pauses merge,
    phones of zero length are dropped (an event at the same sample as the next), a gap before the
    first event is silence.
    """
    starts: list[int] = []
    labels: list[str] = []
    for sample, name in sorted(events, key=lambda e: e[0]):
        label = strip_stress(name) or SILENCE
        sample = min(max(sample, 0), length)
        if sample >= length:
            continue
        if starts and starts[-1] == sample:
            starts.pop(), labels.pop()  # the earlier one has zero length
        if labels and labels[-1] == label == SILENCE:
            continue
        starts.append(sample)
        labels.append(label)
    if starts and starts[0] > 0 and labels[0] == SILENCE:
        starts[0] = 0  # a pause that starts late: the gap before it is the same pause
    elif not starts or starts[0] > 0:
        starts.insert(0, 0)
        labels.insert(0, SILENCE)
    return np.asarray(starts, dtype=np.int64), tuple(labels)


def available_variants() -> list[str]:
    """Names of the voice variants in the shipped data ("m1", "f3", ...), sorted."""
    folder = os.path.join(espeakng_loader.get_data_path(), "voices", "!v")
    return sorted(os.listdir(folder))


def _send(stream, payload: bytes) -> None:
    stream.write(struct.pack("<Q", len(payload)) + payload)
    stream.flush()


def _receive(stream) -> bytes:
    header = stream.read(8)
    if len(header) != 8:
        raise EspeakError("the espeak-ng helper process stopped")
    (size,) = struct.unpack("<Q", header)
    payload = stream.read(size)
    if len(payload) != size:
        raise EspeakError("the espeak-ng helper process stopped mid-answer")
    return payload


def _encode_result(samples: bytes, events: list[tuple[int, str]]) -> bytes:
    header = json.dumps({"events": events}).encode()
    return struct.pack("<Q", len(header)) + header + samples


def _serve() -> None:
    """Helper process: read one JSON request per line, answer each from a freshly forked child."""
    library = _get_library()
    library.list_voices()
    out = sys.stdout.buffer
    for line in sys.stdin.buffer:
        request = json.loads(line)
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: pristine espeak-ng state, one utterance, then gone
            os.close(read_end)
            try:
                voice = Voice(**request["voice"])
                answer = _encode_result(*library.synthesize(request["text"], voice))
                answer = b"ok" + answer
            except Exception as error:  # reported to the parent, which raises it
                answer = b"er" + str(error).encode()
            with os.fdopen(write_end, "wb") as pipe:
                pipe.write(answer)
            os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as pipe:
            answer = pipe.read()
        _, status = os.waitpid(pid, 0)
        if status != 0 or len(answer) < 2:
            answer = b"er" + f"synthesis process died (status {status})".encode()
        _send(out, answer)


class Synthesizer:
    """Speech with phone alignments; each utterance depends only on its text and voice.

    Owns one helper process (see the module docstring); use as a context manager or call `close`.
    Calls are serialised with a lock, so one Synthesizer may be shared between threads.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # -P: the script's folder (training/) must not shadow modules the helper imports
        self._process = subprocess.Popen(
            [sys.executable, "-P", "-u", os.path.abspath(__file__), "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )

    def __call__(self, text: str, voice: Voice) -> Synthesis:
        """Speak `text` in `voice`: int16 samples at 22050 Hz and the phones that tile them."""
        request = json.dumps({"text": text, "voice": voice.__dict__}).encode() + b"\n"
        with self._lock:
            if self._process.poll() is not None:
                raise EspeakError("the espeak-ng helper process is not running")
            self._process.stdin.write(request)
            self._process.stdin.flush()
            answer = _receive(self._process.stdout)
        if answer[:2] != b"ok":
            raise EspeakError(f"{answer[2:].decode(errors='replace')} (text {text!r}, {voice})")
        (size,) = struct.unpack("<Q", answer[2:10])
        events = [tuple(e) for e in json.loads(answer[10 : 10 + size])["events"]]
        samples = np.frombuffer(answer[10 + size :], dtype="<i2").copy()
        if samples.size == 0:
            raise EspeakError(f"espeak-ng produced no audio for {text!r} ({voice})")
        starts, phones = events_to_phones(events, samples.size)
        return Synthesis(samples=samples, starts=starts, phones=phones)

    def close(self) -> None:
        """Stop the helper process."""
        if self._process.poll() is None:
            self._process.stdin.close()
            self._process.wait(timeout=30)

    def __enter__(self) -> Synthesizer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


if __name__ == "__main__" and sys.argv[1:] == ["--serve"]:
    _serve()
