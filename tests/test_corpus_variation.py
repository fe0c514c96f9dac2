"""Natural variation: each utterance its own realisation, drawn within the stated ranges, with phone
boundaries that move exactly with the audio; `clean` is the corpus of earlier versions, byte for byte."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import wave
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from training.corpus import VARIATION_TABLE, build_corpus
from training.corpus.espeak import ESPEAK_SAMPLE_RATE, Synthesizer, Voice
from training.corpus.variation import (
    CHANNEL_FREQUENCIES,
    NATURAL,
    Variation,
    add_noise,
    babble_noise,
    coloured_noise,
    draw_realisation,
    equalise,
    realise,
    room_response,
    speed_source_rate,
    to_rate,
)
from training.data import load_split, read_alignment
from training.data.audio import resampled_position

# sha256 over (relative path, sha256 of the bytes) of every file of
# build_corpus(out, images=3, captions_per_image=2, seed=5) made by the generator before variation
# existed (commit a26489e): `variation="clean"` must keep reproducing it.
OLD_CLEAN_TREE = "0758e805d7baa6f7af322a8c8762af91a27b163e54ce0451b80fafd50a8f36d0"
OLD_CLEAN_FILES = 227


def _tree_digest(root: Path) -> tuple[str, int]:
    digest, count = hashlib.sha256(), 0
    for path in sorted(root.rglob("*")):
        if path.is_file():
            name = str(path.relative_to(root))
            digest.update(f"{name}\0{hashlib.sha256(path.read_bytes()).hexdigest()}\n".encode())
            count += 1
    return digest.hexdigest(), count


def _samples(path: Path) -> np.ndarray:
    with wave.open(str(path)) as wav:
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")


def test_clean_reproduces_the_corpus_of_earlier_versions(tmp_path: Path) -> None:
    out = build_corpus(
        tmp_path / "c", images=3, captions_per_image=2, seed=5, variation="clean", progress=False
    )
    assert _tree_digest(out) == (OLD_CLEAN_TREE, OLD_CLEAN_FILES)
    assert not (out / VARIATION_TABLE).exists()


@pytest.fixture(scope="module")
def natural(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("natural") / "c"
    return build_corpus(out, images=3, captions_per_image=2, seed=5, progress=False)


def test_natural_is_deterministic_and_differs_from_clean(natural: Path, tmp_path: Path) -> None:
    again = build_corpus(tmp_path / "again", images=3, captions_per_image=2, seed=5, progress=False)
    assert _tree_digest(again) == _tree_digest(natural)
    assert _tree_digest(natural)[0] != OLD_CLEAN_TREE
    table = pd.read_csv(natural / VARIATION_TABLE, sep="\t")
    assert len(table) == len(set(table["uttid"])) == 3 * 2 + 100  # captions + read sentences
    assert table[["rate", "pitch", "range", "speed", "snr", "rt60"]].nunique().min() > 10


def _realised(natural: Path) -> list[tuple[str, Path, Path, str, Voice, dict]]:
    """(uttid, wav, alignment, text, realised voice, realisation row) of the corpus's captions."""
    table = pd.read_csv(natural / VARIATION_TABLE, sep="\t").set_index("uttid")
    rows = []
    for split in ("train", "val", "test"):
        for entry in load_split(natural, split):
            for c in entry["captions"]:
                r = table.loc[c["uttid"]]
                voice = Voice(c["speaker"], pitch=int(r["pitch"]), rate=int(r["rate"]),
                              range=int(r["range"]))  # fmt: skip
                alignment = natural / "alignments" / split / f"{c['uttid']}.txt"
                rows.append((c["uttid"], c["wav"], alignment, c["text"], voice, r.to_dict()))
    return rows


def test_phone_bounds_move_exactly_with_the_speed_change(natural: Path) -> None:
    """Re-synthesise each caption with its realised voice: the wav's length and every phone bound
    are the synthesis's, moved by the drawn speed (rounded half up to a 16 kHz sample)."""
    speeds = []
    with Synthesizer() as synthesizer:
        for _uttid, wav, alignment, text, voice, row in _realised(natural):
            synthesis = synthesizer(text, voice)
            source = speed_source_rate(row["speed"], ESPEAK_SAMPLE_RATE)
            assert abs(source / ESPEAK_SAMPLE_RATE - row["speed"]) < 1e-4
            length = math.ceil(synthesis.samples.size * 16000 / source)
            assert _samples(wav).size == length
            expected = [resampled_position(int(s), source, 16000) for s in synthesis.starts]
            phones = read_alignment(alignment)
            onsets = [round(onset * 16000) for onset, _, _ in phones]
            assert onsets == expected and [p for _, _, p in phones] == list(synthesis.phones)
            assert round(phones[-1][1] * 16000) == length
            speeds.append(source / ESPEAK_SAMPLE_RATE)
    assert min(speeds) < 1 < max(speeds) or len(set(speeds)) > 1


@pytest.mark.parametrize("speed", [0.9, 1.0, 1.1])
def test_a_tone_burst_lands_where_the_alignment_says(speed: float) -> None:
    """A 500 Hz burst filling phone 2 of a synthetic utterance is found, after the speed change, inside
    phone 2's moved bounds (to within the resampling filter's ~1 ms ringing)."""
    rate = ESPEAK_SAMPLE_RATE
    starts = np.array([0, 3000, 7000, 11000])
    samples = np.zeros(14000)
    t = np.arange(starts[2] - starts[1]) / rate
    samples[starts[1] : starts[2]] = 10000 * np.sin(2 * np.pi * 500 * t)
    source = speed_source_rate(speed, rate)
    audio, bounds = to_rate(samples, starts, source, 16000)
    assert bounds[0] == 0 and bounds[-1] == audio.size == math.ceil(14000 * 16000 / source)
    loud = np.flatnonzero(np.abs(audio) > 1000)
    assert abs(loud[0] - bounds[1]) <= 16 and abs(loud[-1] - bounds[2]) <= 16
    scale = 16000 / source  # the time change: durations scale by 1 / speed at 16 kHz
    assert abs((bounds[2] - bounds[1]) - (starts[2] - starts[1]) * scale) <= 1


def test_realisations_stay_within_the_stated_ranges() -> None:
    voice = Voice("en+m1", pitch=50, rate=170, range=40)
    draws = [
        draw_realisation(np.random.default_rng(k), voice, NATURAL, ESPEAK_SAMPLE_RATE)
        for k in range(300)
    ]
    v = NATURAL
    for r in draws:
        assert abs(r.voice.rate / voice.rate - 1) <= v.rate + 0.01
        assert abs(r.voice.pitch - voice.pitch) <= v.pitch
        assert abs(r.voice.range - voice.range) <= v.range
        assert v.speed[0] - 0.002 <= r.speed <= v.speed[1] + 0.002
        assert v.snr[0] <= r.snr <= v.snr[1] and v.rt60[0] <= r.rt60 <= v.rt60[1]
        assert v.drr[0] <= r.drr <= v.drr[1] and v.gain[0] <= r.gain <= v.gain[1]
        assert len(r.channel) == len(CHANNEL_FREQUENCIES)
        assert all(abs(g) <= v.channel for g in r.channel)
    assert {r.noise for r in draws} == {"coloured", "babble"}
    assert len({r.speed for r in draws}) > 20 and len({r.voice.pitch for r in draws}) > 10
    assert len({r.channel for r in draws}) == len(draws)


def test_channels_are_drawn_last_and_can_be_switched_off() -> None:
    voice = Voice("en")
    for k in range(5):
        with_channel = draw_realisation(np.random.default_rng(k), voice, NATURAL, 22050)
        without = draw_realisation(
            np.random.default_rng(k), voice, dataclasses.replace(NATURAL, channel=0.0), 22050
        )
        assert without.channel == () and dataclasses.replace(with_channel, channel=()) == without


def test_the_equaliser_shapes_the_spectrum_as_drawn_and_keeps_the_power() -> None:
    noise = np.random.default_rng(0).standard_normal(64000)
    gains = (6.0, -6.0, 3.0, -3.0, 0.0, 6.0)
    out = equalise(noise, gains)
    assert out.shape == noise.shape and np.mean(out**2) == pytest.approx(np.mean(noise**2))
    f = np.fft.rfftfreq(noise.size, 1 / 16000)
    power_in, power_out = np.abs(np.fft.rfft(noise)) ** 2, np.abs(np.fft.rfft(out)) ** 2

    def band_db(centre: float) -> float:
        band = (f > 0.97 * centre) & (f < 1.03 * centre)
        return 10 * math.log10(power_out[band].sum() / power_in[band].sum())

    measured = np.array([band_db(c) for c in CHANNEL_FREQUENCIES])
    # the power is renormalised, so the gains hold up to one common offset
    assert measured - measured.mean() == pytest.approx(np.subtract(gains, np.mean(gains)), abs=0.3)
    assert equalise(noise, ()) is noise


@pytest.mark.parametrize("rt60, drr", [(0.1, 3.0), (0.4, 15.0), (0.25, 8.0)])
def test_room_responses_decay_as_drawn(rt60: float, drr: float) -> None:
    h = room_response(np.random.default_rng(1), rt60=rt60, drr=drr)
    assert h.size == math.ceil(rt60 * 16000) + 1 and h[0] == 1 == np.abs(h).max()
    assert 10 * math.log10(1 / float(np.sum(h[1:] ** 2))) == pytest.approx(drr, abs=1e-9)
    # Schroeder backward integration: the tail's energy falls by 20 dB in about rt60 / 3
    energy = np.cumsum((h[1:] ** 2)[::-1])[::-1]
    decay_db = 10 * np.log10(energy / energy[0])
    t20 = np.argmax(decay_db < -20) / 16000
    assert rt60 / 3 * 0.6 < t20 < rt60 / 3 * 1.4


def test_noise_is_added_at_the_drawn_snr_and_the_pipeline_keeps_its_order() -> None:
    rng = np.random.default_rng(0)
    speech = 3000 * np.sin(np.linspace(0, 900, 16000)) * np.hanning(16000)
    for snr in (10.0, 20.0, 30.0):
        noisy = add_noise(speech, coloured_noise(rng, speech.size, beta=1.0), snr)
        measured = 10 * np.log10(np.mean(speech**2) / np.mean((noisy - speech) ** 2))
        assert measured == pytest.approx(snr, abs=1e-9)
    # realise = channel and room (level kept), then noise at the SNR, then the gain; re-done by hand
    voice = Voice("en")
    for k in range(6):
        r = draw_realisation(np.random.default_rng(k), voice, NATURAL, ESPEAK_SAMPLE_RATE)
        out = realise(speech, r, np.random.default_rng(99)).astype(np.float64)
        replay = np.random.default_rng(99)
        dry = equalise(speech, r.channel)
        wet = np.convolve(dry, room_response(replay, rt60=r.rt60, drr=r.drr))[: speech.size]
        wet *= math.sqrt(np.mean(dry**2) / np.mean(wet**2))
        noise = out / 10 ** (r.gain / 20) - wet
        measured = 10 * np.log10(np.mean(wet**2) / np.mean(noise**2))
        assert measured == pytest.approx(r.snr, abs=0.05), r


def test_noises_have_their_colour_and_unit_power() -> None:
    rng = np.random.default_rng(3)
    n = 32000
    f = np.fft.rfftfreq(n, 1 / 16000)

    def low_share(x: np.ndarray) -> float:
        power = np.abs(np.fft.rfft(x)) ** 2
        return float(power[f < 500].sum() / power.sum())

    white, brown = coloured_noise(rng, n, beta=0.0), coloured_noise(rng, n, beta=2.0)
    babble = babble_noise(rng, n)
    for noise in (white, brown, babble):
        assert np.mean(noise**2) == pytest.approx(1.0)
    assert low_share(white) < 0.1 < 0.9 < low_share(brown)
    # babble comes and goes at a syllable rate: its 50 ms power varies far more than white noise's
    frames = lambda x: (x[: n // 800 * 800].reshape(-1, 800) ** 2).mean(axis=1)  # noqa: E731
    assert np.std(frames(babble)) > 3 * np.std(frames(white))


def test_bad_variation_ranges_are_refused() -> None:
    with pytest.raises(ValueError, match="snr"):
        dataclasses.replace(NATURAL, snr=(30.0, 10.0))
    with pytest.raises(ValueError, match="speed"):
        Variation(speed=(0.2, 1.0))
    with pytest.raises(ValueError, match="rate"):
        Variation(rate=1.5)
    with pytest.raises(ValueError, match="channel"):
        Variation(channel=-1.0)
    with pytest.raises(ValueError, match="expected one of natural, clean"):
        build_corpus("/nonexistent/never", images=3, variation="noisy", progress=False)
