"""Natural variation for the synthetic corpus: every utterance its own realisation.

espeak-ng says a phone in a given context the same way every time for one voice, so without help two
tokens of a phone by one speaker are identical and within-speaker ABX is 0 for any representation.
Each utterance therefore gets, drawn from its own random stream:

- its voice's rate, pitch and pitch range jittered around the speaker's own values (espeak-ng units:
  words per minute, 0-100, 0-100), so durations, intonation and coarticulation differ;
- a speed perturbation (Kaldi-style: the audio is resampled as if it had been recorded at
  `speed` times its rate, so durations scale by 1 / speed and every frequency, formants included, by
  `speed`: a change of apparent vocal-tract length); phone boundaries move with it exactly;
- a microphone-and-session channel: a smooth random equaliser (gains drawn at fixed frequencies,
  interpolated over log frequency) applied to the dry speech, the same for the whole utterance, so
  one frame cannot tell the channel from the phone but the utterance around it can;
- a short synthetic room response (direct path, a few early reflections, an exponentially decaying
  noise tail with a drawn RT60 and direct-to-reverberant ratio), cut to the utterance's length so the
  alignment still tiles the audio;
- additive noise at a drawn signal-to-noise ratio: coloured noise (spectral slope 1/f^beta) or a
  babble-like mixture of formant-shaped, syllable-rate modulated noise "talkers", all synthesised
  from the stream (nothing is downloaded);
- a level change.

Signals here are float64 sample arrays at 16 kHz on the int16 scale (full scale 32767) unless said
otherwise; times are in seconds, levels in dB. Everything is numpy/scipy arithmetic on a seeded
generator with no thread-count dependence: the same stream gives the same bytes.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
from scipy.fft import next_fast_len
from scipy.signal import fftconvolve

from training.corpus.espeak import Voice
from training.data.audio import resample, resampled_position

__all__ = [
    "NATURAL",
    "VARIATIONS",
    "Realisation",
    "Variation",
    "add_noise",
    "CHANNEL_FREQUENCIES",
    "babble_noise",
    "coloured_noise",
    "equalise",
    "draw_realisation",
    "realise",
    "room_response",
    "speed_source_rate",
    "to_rate",
]

FULL_SCALE = 32767.0
PEAK = 0.97 * FULL_SCALE  # louder utterances are scaled down to this peak rather than clipped
RATE_STEP = 50  # Hz: speed-perturbed source rates are multiples of it (small resampling ratios)
# Hz: where a channel's gains are drawn (log-spaced over speech's band; held flat outside it)
CHANNEL_FREQUENCIES = (150.0, 300.0, 600.0, 1200.0, 2400.0, 4800.0)


@dataclass(frozen=True)
class Variation:
    """The ranges that each utterance's realisation is drawn from (uniformly, bounds included).

    rate: relative change of espeak-ng's words per minute (0.1: -10% .. +10%).
    pitch, range: espeak-ng pitch and pitch range units (0-100 scale) added to the speaker's.
    speed: speed-perturbation factors; durations scale by 1 / speed, frequencies by speed.
    rt60: seconds for the room tail to decay by 60 dB (the room response's length).
    drr: direct-to-reverberant energy ratio in dB.
    snr: speech-to-noise power ratio in dB (speech power: mean square over the whole utterance).
    babble: probability that the noise is babble-like rather than coloured.
    gain: level change in dB.
    channel: the largest boost or cut in dB of the utterance's equaliser at each of
    CHANNEL_FREQUENCIES (0: no equaliser).
    """

    rate: float = 0.12
    pitch: int = 10
    range: int = 15
    speed: tuple[float, float] = (0.9, 1.1)
    # Rooms and noise milder than the first natural corpus's (rt60 0.1-0.4 s, drr 3-15 dB, snr
    # 10-30 dB): there no model learned words within the demo's budget, a plain CNN stayed at
    # chance after 600 steps where it reached 40% R@10 on clean speech in 100 (docs/corpus.md).
    # 13 MFCCs still err 3.7% / 3.6% within speaker (captions / read), 7.9% / 20.6% across.
    rt60: tuple[float, float] = (0.1, 0.25)
    drr: tuple[float, float] = (10.0, 20.0)
    snr: tuple[float, float] = (20.0, 40.0)
    babble: float = 0.5
    gain: tuple[float, float] = (-6.0, 6.0)
    channel: float = 6.0

    def __post_init__(self) -> None:
        for name in ("speed", "rt60", "drr", "snr", "gain"):
            low, high = getattr(self, name)
            if not low <= high:
                raise ValueError(f"variation {name}: the range {low}..{high} is empty")
        if not (0.5 <= self.speed[0] and self.speed[1] <= 2.0):
            raise ValueError(f"variation speed: {self.speed} must lie within 0.5..2")
        if self.rt60[0] <= 0:
            raise ValueError(f"variation rt60: {self.rt60} must be positive")
        if not (0 <= self.rate < 1 and self.pitch >= 0 and self.range >= 0):
            raise ValueError(
                f"variation rate/pitch/range: {self.rate}/{self.pitch}/{self.range} must be >= 0 "
                "(rate below 1)"
            )
        if not 0 <= self.channel <= 20:
            raise ValueError(f"variation channel: {self.channel} dB must lie within 0..20")
        if not 0 <= self.babble <= 1:
            raise ValueError(f"variation babble: {self.babble} is not a probability")

    def settings(self) -> dict:
        """The ranges as JSON-ready values (recorded in the corpus's build settings)."""
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }


NATURAL = Variation()
VARIATIONS: dict[str, Variation | None] = {"natural": NATURAL, "clean": None}


@dataclass(frozen=True)
class Realisation:
    """One utterance's draw: the voice espeak-ng speaks with and what happens to the audio after.

    source_rate: Hz the 22050 Hz synthesis is treated as having been recorded at (speed * 22050,
    a multiple of 50 Hz); speed = source_rate / synthesis rate. noise: "coloured" or "babble";
    colour: the coloured noise's spectral slope beta (power ~ 1/f^beta). channel: the equaliser's
    gains in dB at CHANNEL_FREQUENCIES.
    """

    voice: Voice
    source_rate: int
    speed: float
    rt60: float
    drr: float
    snr: float
    noise: str
    colour: float
    gain: float
    channel: tuple[float, ...] = ()

    def row(self) -> dict:
        """A flat record (for the corpus's variation table)."""
        v = self.voice
        return {"rate": v.rate, "pitch": v.pitch, "range": v.range, "speed": round(self.speed, 4),
                "rt60": self.rt60, "drr": self.drr, "snr": self.snr, "noise": self.noise,
                "colour": self.colour, "gain": self.gain,
                "channel": ",".join(f"{g:g}" for g in self.channel)}  # fmt: skip


def speed_source_rate(speed: float, synthesis_rate: int) -> int:
    """The rate (Hz, a multiple of 50) that plays `synthesis_rate` audio at about `speed`."""
    return max(RATE_STEP, round(speed * synthesis_rate / RATE_STEP) * RATE_STEP)


def _uniform(rng: np.random.Generator, bounds: tuple[float, float], digits: int = 2) -> float:
    return round(float(rng.uniform(*bounds)), digits)


def draw_realisation(
    rng: np.random.Generator, voice: Voice, variation: Variation, synthesis_rate: int
) -> Realisation:
    """Draw one utterance's realisation around the speaker's `voice` (a fixed number of draws)."""
    rate, pitch, span = rng.uniform(-1, 1, size=3)
    jittered = dataclasses.replace(
        voice,
        rate=int(np.clip(round(voice.rate * (1 + variation.rate * rate)), 80, 450)),
        pitch=int(np.clip(round(voice.pitch + variation.pitch * pitch), 0, 100)),
        range=int(np.clip(round(voice.range + variation.range * span), 0, 100)),
    )
    source_rate = speed_source_rate(float(rng.uniform(*variation.speed)), synthesis_rate)
    babble = bool(rng.uniform() < variation.babble)
    drawn = dict(rt60=_uniform(rng, variation.rt60, 3), drr=_uniform(rng, variation.drr),
                 snr=_uniform(rng, variation.snr), noise="babble" if babble else "coloured",
                 colour=_uniform(rng, (0.0, 2.0)), gain=_uniform(rng, variation.gain))  # fmt: skip
    # drawn last, so every other parameter keeps the value it had before channels existed
    channel = tuple(
        _uniform(rng, (-variation.channel, variation.channel), 1) for _ in CHANNEL_FREQUENCIES
    )
    return Realisation(
        voice=jittered,
        source_rate=source_rate,
        speed=source_rate / synthesis_rate,
        channel=channel if variation.channel > 0 else (),
        **drawn,
    )


def to_rate(
    samples: np.ndarray, starts: np.ndarray, source_rate: int, target_rate: int
) -> tuple[np.ndarray, list[int]]:
    """Resample `samples` [T] treated as recorded at `source_rate` to `target_rate`; move phones.

    starts: [P] sample indices where each phone starts (at source_rate). Returns float64 [T'] with
    T' = ceil(T * target / source) and bounds [P + 1] (first 0, last T'), each start rounded half up
    to the nearest output sample. A source_rate other than the synthesis rate is a speed change.
    """
    audio = resample(np.asarray(samples, dtype=np.float64), source_rate, target_rate)
    bounds = [resampled_position(int(s), source_rate, target_rate) for s in starts]
    return audio, [*bounds, audio.size]


def equalise(
    speech: np.ndarray, gains: tuple[float, ...] | np.ndarray, sample_rate: int = 16000
) -> np.ndarray:
    """speech [T] through a zero-phase equaliser, float64 [T], at the same power as `speech`.

    gains: dB at CHANNEL_FREQUENCIES (empty: `speech` unchanged). The response is the gains
    interpolated linearly over log frequency, held at the end values below the first and above the
    last; smooth in frequency, so its impulse response is short and the zero padding (2048 samples)
    keeps the circular convolution from wrapping.
    """
    if len(gains) == 0 or speech.size == 0:
        return speech
    m = next_fast_len(speech.size + 2048, real=True)
    f = np.maximum(np.fft.rfftfreq(m, 1 / sample_rate), 1.0)
    db = np.interp(np.log(f), np.log(CHANNEL_FREQUENCIES), np.asarray(gains, dtype=np.float64))
    out = np.fft.irfft(np.fft.rfft(speech, m) * 10 ** (db / 20), m)[: speech.size]
    power, out_power = float(np.mean(speech**2)), float(np.mean(out**2))
    return out * math.sqrt(power / out_power) if out_power > 0 else out


def room_response(
    rng: np.random.Generator, *, rt60: float, drr: float, sample_rate: int = 16000
) -> np.ndarray:
    """A synthetic room impulse response, float64 [L] with L = ceil(rt60 * sample_rate) + 1.

    h[0] = 1 is the direct path; 3-6 early reflections (2-30 ms, decaying) and a Gaussian tail whose
    amplitude falls as exp(-6.91 t / rt60) (60 dB at t = rt60) make the reverberant part, scaled so
    that direct energy / reverberant energy is `drr` dB.
    """
    length = math.ceil(rt60 * sample_rate) + 1
    t = np.arange(length) / sample_rate
    decay = np.exp(-3 * math.log(10) * t / rt60)
    tail = rng.standard_normal(length) * decay
    tail[: int(0.002 * sample_rate)] = 0.0  # the tail starts after the direct sound
    count = int(rng.integers(3, 7))
    delays = rng.integers(int(0.002 * sample_rate), int(0.03 * sample_rate), size=count)
    signs = rng.choice([-1.0, 1.0], size=count)
    for delay, sign in zip(delays, signs, strict=True):
        tail[min(delay, length - 1)] += sign * 4 * decay[min(delay, length - 1)]
    reverberant = tail * math.sqrt(10 ** (-drr / 10) / float(np.sum(tail**2)))
    reverberant[0] = 1.0
    return reverberant


def _spectrum_shaped(rng: np.random.Generator, n: int, gain_of, sample_rate: int) -> np.ndarray:
    """White Gaussian noise [n] with its amplitude spectrum multiplied by gain_of(frequencies [F]).

    The noise is made at the next FFT-friendly length and cut to n (a length with a large prime
    factor makes the FFT ten times slower).
    """
    m = next_fast_len(n, real=True)
    f = np.fft.rfftfreq(m, 1 / sample_rate)
    return np.fft.irfft(np.fft.rfft(rng.standard_normal(m)) * gain_of(f), m)[:n]


def _unit_power(x: np.ndarray) -> np.ndarray:
    return x / math.sqrt(float(np.mean(x**2)) or 1.0)


def coloured_noise(
    rng: np.random.Generator, n: int, *, beta: float, sample_rate: int = 16000
) -> np.ndarray:
    """Noise [n] with power spectrum ~ 1/f^beta (0 white, 1 pink, 2 brown) above 50 Hz, unit power."""
    return _unit_power(
        _spectrum_shaped(rng, n, lambda f: np.maximum(f, 50.0) ** (-beta / 2), sample_rate)
    )


def babble_noise(
    rng: np.random.Generator, n: int, *, talkers: int | None = None, sample_rate: int = 16000
) -> np.ndarray:
    """Babble-like noise [n], unit power: a sum of 3-7 "talkers", each a pink noise with two
    formant-like peaks (F1 300-900 Hz, F2 900-2500 Hz) switched on and off at a syllable rate
    (3-7 Hz) by a smooth random envelope."""
    talkers = int(rng.integers(3, 8)) if talkers is None else talkers
    mix = np.zeros(n)
    for _ in range(talkers):
        f1, f2 = rng.uniform(300, 900), rng.uniform(900, 2500)

        def voice_gain(f: np.ndarray, f1: float = f1, f2: float = f2) -> np.ndarray:
            peaks = np.exp(-0.5 * ((f - f1) / 120) ** 2) + 0.7 * np.exp(
                -0.5 * ((f - f2) / 200) ** 2
            )
            return np.maximum(f, 50.0) ** -0.5 * (0.1 + peaks)

        voice = _spectrum_shaped(rng, n, voice_gain, sample_rate)
        syllables = rng.uniform(3, 7)
        knots = rng.uniform(0, 1, size=max(2, math.ceil(n / sample_rate * syllables) + 2))
        envelope = np.interp(np.arange(n) * syllables / sample_rate, np.arange(knots.size), knots)
        mix += _unit_power(voice) * envelope**2
    return _unit_power(mix)


def add_noise(speech: np.ndarray, noise: np.ndarray, snr: float) -> np.ndarray:
    """speech [T] + noise [T] scaled so that mean(speech^2) / mean(noise'^2) is `snr` dB."""
    power = float(np.mean(speech**2))
    scale = math.sqrt(power / (float(np.mean(noise**2)) * 10 ** (snr / 10))) if power else 0.0
    return speech + scale * noise


def realise(
    speech: np.ndarray, realisation: Realisation, rng: np.random.Generator, sample_rate: int = 16000
) -> np.ndarray:
    """The channel, the room, the noise and the level of `realisation` applied to speech [T]; int16 [T].

    The equaliser keeps the speech's power; the room response is convolved and cut to T (the tail past the end is dropped, so phone bounds
    stay valid) and the result scaled back to the dry speech's power; noise is added at the drawn
    SNR; the gain applies last, and an utterance that would clip is scaled down to a 0.97 peak.
    """
    speech = equalise(speech, realisation.channel, sample_rate)
    dry_power = float(np.mean(speech**2))
    room = room_response(rng, rt60=realisation.rt60, drr=realisation.drr, sample_rate=sample_rate)
    wet = fftconvolve(speech, room)[: speech.size]
    wet_power = float(np.mean(wet**2))
    if wet_power > 0:
        wet *= math.sqrt(dry_power / wet_power)
    if realisation.noise == "babble":
        noise = babble_noise(rng, speech.size, sample_rate=sample_rate)
    else:
        noise = coloured_noise(rng, speech.size, beta=realisation.colour, sample_rate=sample_rate)
    noisy = add_noise(wet, noise, realisation.snr) * 10 ** (realisation.gain / 20)
    peak = float(np.max(np.abs(noisy))) if noisy.size else 0.0
    if peak > PEAK:
        noisy *= PEAK / peak
    return np.clip(np.rint(noisy), -32768, 32767).astype(np.int16)
