"""The espeak-ng binding: speech with phone boundaries that depends only on the text and the voice."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from training.corpus.espeak import (
    ESPEAK_SAMPLE_RATE,
    SILENCE,
    EspeakError,
    Synthesizer,
    Voice,
    available_variants,
    events_to_phones,
    strip_stress,
    text_to_phones,
)
from training.data.audio import resampled_position

TEXT = "a small red circle to the left of a blue square"


@pytest.fixture(scope="module")
def synthesizer():
    with Synthesizer() as synth:
        yield synth


def test_an_utterance_does_not_depend_on_what_was_spoken_before(synthesizer: Synthesizer) -> None:
    voice = Voice("en-us+f3", pitch=60, rate=160)
    first = synthesizer(TEXT, voice)
    synthesizer("the old farmer bought seven apples", Voice("en+m2", pitch=40))
    again = synthesizer(TEXT, voice)
    assert np.array_equal(first.samples, again.samples)
    assert np.array_equal(first.starts, again.starts) and first.phones == again.phones
    with Synthesizer() as fresh:
        assert np.array_equal(fresh(TEXT, voice).samples, first.samples)


def test_phones_tile_the_audio_and_match_the_text(synthesizer: Synthesizer) -> None:
    for name in ("en+m1", "en-us+f2", "en-gb-x-rp+m3"):
        result = synthesizer(TEXT, Voice(name))
        assert result.sample_rate == ESPEAK_SAMPLE_RATE and result.samples.dtype == np.int16
        assert result.starts[0] == 0 and (np.diff(result.starts) > 0).all()
        assert result.starts[-1] < result.samples.size
        assert [p for p in result.phones if p != SILENCE] == text_to_phones(TEXT, name)
        assert result.phones[-1] == SILENCE  # the end pause


def test_voice_settings_change_the_speech(synthesizer: Synthesizer) -> None:
    slow = synthesizer(TEXT, Voice("en+m1", rate=120))
    fast = synthesizer(TEXT, Voice("en+m1", rate=220))
    assert slow.samples.size > 1.4 * fast.samples.size
    low = synthesizer(TEXT, Voice("en+m1", pitch=20))
    high = synthesizer(TEXT, Voice("en+m1", pitch=80))
    assert not np.array_equal(low.samples[: high.samples.size], high.samples[: low.samples.size])


def test_unknown_voices_are_errors(synthesizer: Synthesizer) -> None:
    with pytest.raises(EspeakError, match="no voice"):
        synthesizer(TEXT, Voice("xx-nowhere+m1"))
    with pytest.raises(EspeakError, match="no voice"):
        text_to_phones(TEXT, "xx-nowhere")
    assert synthesizer("a cat", Voice("en")).samples.size > 0  # the helper survives an error


def test_variants_are_listed() -> None:
    variants = available_variants()
    assert {"m1", "f3"} <= set(variants)


def test_events_become_a_tiling_of_phones() -> None:
    events = [
        (0, "ɐ"),
        (100, "ˈb"),
        (180, "l"),
        (180, "ˌuː"),
        (300, ""),
        (350, ""),
        (400, "s"),
        (500, ""),
    ]
    starts, phones = events_to_phones(events, length=600)
    # "l" has zero length and goes; pauses merge; stress marks go
    assert phones == ("ɐ", "b", "uː", SILENCE, "s", SILENCE)
    assert starts.tolist() == [0, 100, 180, 300, 400, 500]
    starts, phones = events_to_phones([(50, "a"), (600, "")], length=600)
    assert phones == (SILENCE, "a") and starts.tolist() == [0, 50]  # leading gap is silence


@settings(max_examples=200, deadline=None)
@given(
    events=st.lists(
        st.tuples(st.integers(-5, 700), st.sampled_from(["", "a", "ˈb", "ˌc", "dː"])), max_size=30
    ),
    length=st.integers(1, 600),
)
def test_any_events_give_phones_that_tile_the_audio(events, length) -> None:
    starts, phones = events_to_phones(events, length)
    assert len(starts) == len(phones) >= 1
    assert starts[0] == 0 and (np.diff(starts) > 0).all() and starts[-1] < length
    assert all(not (a == b == SILENCE) for a, b in zip(phones, phones[1:], strict=False))
    assert not any(mark in p for p in phones for mark in "ˈˌ")
    # every phone that survives starts where an event with its name put it
    named = {(min(max(s, 0), length), strip_stress(n) or SILENCE) for s, n in events}
    assert all((int(s), p) in named for s, p in zip(starts, phones, strict=True) if s > 0)


@given(st.integers(0, 10**7), st.sampled_from([(22050, 16000), (44100, 16000), (8000, 16000)]))
def test_resampled_positions_round_to_the_nearest_sample(position, rates) -> None:
    source, target = rates
    moved = resampled_position(position, source, target)
    assert abs(moved - position * target / source) <= 0.5
    assert resampled_position(position + 1, source, target) >= moved
