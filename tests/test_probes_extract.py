"""Activation stores: what `probes.extract` writes, reads back, caches and resumes.

These tests use a tiny torchaudio wav2vec 2.0 (random weights) so that they need no trained run.
"""

from __future__ import annotations

import dask.array
import numpy as np
import pytest
import soundfile
import torch
import torchaudio
import xarray as xr

from probes import extract, open_store
from probes.store import StoreMismatchError
from probes.store_check import IncompleteStoreError

# A 7-layer conv encoder with wav2vec 2.0's strides (320 samples = 20 ms per frame), 3 transformer layers.
CONV = [(16, 10, 5), (16, 3, 2), (16, 3, 2), (16, 3, 2), (16, 3, 2), (16, 2, 2), (16, 2, 2)]


def tiny_wav2vec2(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torchaudio.models.wav2vec2_model(
        "group_norm", CONV, False, 32, 0.0, 16, 4, 3, 4, 0.0, 64, 0.0, 0.0, False, 0.0, None
    ).eval()


@pytest.fixture(scope="module")
def model():
    return tiny_wav2vec2(0)


@pytest.fixture(scope="module")
def wavs(tmp_path_factory):
    """Ten noise 'utterances' of 0.5 to 1.9 s; ids u0..u9."""
    folder = tmp_path_factory.mktemp("wavs")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(10):
        path = folder / f"u{i}.wav"
        soundfile.write(path, 0.1 * rng.standard_normal(8000 + 1600 * i).astype(np.float32), 16000)
        paths.append(path)
    return paths


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SSLVGS_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def forwards(model):
    """A counter of forward passes (batches) through `model`, reset with `forwards[0] = 0`."""
    calls = [0]

    def count(*_):
        calls[0] += 1

    handle = model.encoder.transformer.layers[0].register_forward_pre_hook(count)
    yield calls
    handle.remove()


def reference(model, wav_path, layer):
    """One utterance alone through torchaudio's own extract_features (layer >= 1)."""
    wave, _ = soundfile.read(wav_path, dtype="float32")
    with torch.inference_mode():
        layers, _ = model.extract_features(torch.from_numpy(wave)[None])
    return layers[layer - 1][0].numpy()


def frames_of(ds, utterance, layer):
    row = list(ds.utterance.values).index(utterance)
    start, count = int(ds.offset[row]), int(ds.n_frames[row])
    return ds.activations.sel(layer=layer).values[start : start + count]


def test_store_round_trip_layout_and_values(model, wavs, tmp_path):
    ds = extract(model, wavs, "all", store=tmp_path / "s.zarr", batch_size=3, progress=False)
    assert ds.activations.dims == ("layer", "frame", "feature")
    assert list(ds.layer.values) == [0, 1, 2, 3]
    assert list(ds.utterance.values) == [f"u{i}" for i in range(10)]
    assert int(ds.n_frames.sum()) == ds.sizes["frame"]
    # Batched and padded, every utterance still equals its own unpadded forward pass.
    for i in (0, 4, 9):
        np.testing.assert_allclose(
            frames_of(ds, f"u{i}", 2), reference(model, wavs[i], 2), atol=1e-5
        )
    # Per-frame coordinates point back to their utterance and time.
    row = 4
    start, count = int(ds.offset[row]), int(ds.n_frames[row])
    assert (ds.utt.values[start : start + count] == row).all()
    np.testing.assert_allclose(ds.time.values[start : start + 2], [0.01, 0.03])
    reopened = xr.open_zarr(tmp_path / "s.zarr")
    xr.testing.assert_identical(reopened.load(), ds.load())


def test_store_is_lazy(model, wavs, tmp_path):
    ds = extract(model, wavs, [1], store=tmp_path / "s.zarr", progress=False)
    assert isinstance(ds.activations.data, dask.array.Array)
    assert isinstance(open_store(tmp_path / "s.zarr").activations.data, dask.array.Array)


def test_float16_storage(model, wavs, tmp_path):
    full = extract(model, wavs, [3], store=tmp_path / "a.zarr", progress=False)
    half = extract(model, wavs, [3], store=tmp_path / "b.zarr", dtype="float16", progress=False)
    assert half.activations.dtype == np.float16
    np.testing.assert_allclose(
        half.activations.values, full.activations.values, atol=2e-2, rtol=1e-2
    )


def test_second_call_is_a_cache_read(model, wavs, forwards):
    calls = forwards
    first = extract(model, wavs, [1, 3], progress=False)
    assert calls[0] > 0
    calls[0] = 0
    again = extract(model, wavs, [1, 3], progress=False)
    subset = extract(model, wavs, 3, progress=False)  # a subset of a cached store is a hit too
    assert calls[0] == 0
    xr.testing.assert_identical(again.load(), first.load())
    assert list(subset.layer.values) == [3]


def test_cache_misses_when_a_wav_changes(model, wavs, tmp_path):
    copies = []
    for path in wavs[:3]:
        copies.append(tmp_path / path.name)
        copies[-1].write_bytes(path.read_bytes())
    first = extract(model, copies, [1], progress=False)
    soundfile.write(copies[0], np.zeros(8000, dtype=np.float32), 16000)
    second = extract(model, copies, [1], progress=False)
    assert not np.array_equal(first.activations.values, second.activations.values)


def test_resumed_extraction_equals_uninterrupted(model, wavs, tmp_path, forwards):
    whole = extract(model, wavs, "all", store=tmp_path / "whole.zarr", batch_size=2, progress=False)
    calls = forwards
    calls[0] = 0

    def interrupt(*_):
        if calls[0] == 3:
            raise KeyboardInterrupt

    handle = model.encoder.transformer.layers[0].register_forward_pre_hook(interrupt)
    with pytest.raises(KeyboardInterrupt):
        extract(model, wavs, "all", store=tmp_path / "cut.zarr", batch_size=2, progress=False)
    handle.remove()
    with pytest.raises(IncompleteStoreError, match="resume"):
        open_store(tmp_path / "cut.zarr")
    calls[0] = 0
    resumed = extract(model, wavs, "all", store=tmp_path / "cut.zarr", batch_size=2, progress=False)
    assert calls[0] == 5 - 2  # five batches of two, two of them done before the interruption
    xr.testing.assert_equal(resumed.activations.load(), whole.activations.load())
    xr.testing.assert_equal(resumed.n_frames.load(), whole.n_frames.load())


def test_abx_set_source_and_missing_wav(model, wavs, tmp_path):
    from training.data import write_items  # noqa: F401  (item files are the ABX helper's format)

    folder = tmp_path / "abx"
    (folder / "wavs").mkdir(parents=True)
    for path in wavs[:2]:
        (folder / "wavs" / path.name).write_bytes(path.read_bytes())
    header = "#file onset offset #phone prev-phone next-phone speaker\n"
    lines = ["u1 0.1 0.2 a b c s2\n", "u0 0.1 0.2 b a c s1\n", "u1 0.3 0.4 a b c s2\n"]
    (folder / "items.item").write_text(header + "".join(lines))
    ds = extract(model, folder, [1], progress=False)
    assert list(ds.utterance.values) == ["u1", "u0"]
    assert list(ds.speaker.values) == ["s2", "s1"]
    (folder / "items.item").write_text(header + "".join(lines) + "u7 0.1 0.2 a b c s1\n")
    with pytest.raises(FileNotFoundError, match=r"items\.item:5.*u7\.wav"):
        extract(model, folder, [1], progress=False)


def test_store_of_another_model_is_refused(model, wavs, tmp_path):
    extract(model, wavs[:2], [1], store=tmp_path / "s.zarr", progress=False)
    other = tiny_wav2vec2(1)
    with pytest.raises(StoreMismatchError, match="another model"):
        extract(other, wavs[:2], [1], store=tmp_path / "s.zarr", progress=False)
    replaced = extract(
        other, wavs[:2], [1], store=tmp_path / "s.zarr", overwrite=True, progress=False
    )
    assert (
        replaced.attrs["model_id"]
        != extract(model, wavs[:2], [1], progress=False).attrs["model_id"]
    )


def test_audio_at_another_rate_is_refused_or_resampled(model, wavs, tmp_path):
    path = tmp_path / "slow.wav"
    soundfile.write(path, np.zeros(4000, dtype=np.float32), 8000)
    with pytest.raises(ValueError, match=r"slow\.wav is sampled at 8000 Hz.*resample=True"):
        extract(model, [path], [1], progress=False)
    ds = extract(model, [path], [1], resample=True, progress=False)
    assert int(ds.n_frames[0]) == 24  # 0.5 s at 50 frames per second, less the conv's edge


@pytest.mark.parametrize(
    "layers, error, message",
    [
        (4, ValueError, "layer 4 is out of range.*0..3"),
        (-1, ValueError, "out of range"),
        ("some", ValueError, "all"),
    ],
)
def test_bad_layers(model, wavs, layers, error, message):
    with pytest.raises(error, match=message):
        extract(model, wavs, layers, progress=False)


def test_empty_and_missing_sources(model, tmp_path):
    with pytest.raises(ValueError, match="no utterances"):
        extract(model, [], progress=False)
    (tmp_path / "empty.item").write_text(
        "#file onset offset #phone prev-phone next-phone speaker\n"
    )
    with pytest.raises(ValueError, match=r"empty\.item.*no utterances"):
        extract(model, tmp_path / "empty.item", progress=False)
    with pytest.raises(FileNotFoundError, match="nowhere.wav"):
        extract(model, [tmp_path / "nowhere.wav"], progress=False)


def test_a_batch_cut_between_its_data_and_its_record_is_redone(model, wavs, tmp_path, monkeypatch):
    """Killed after writing a batch's frames but before recording it: the frames are trimmed."""
    from zarr.core.attributes import Attributes

    whole = extract(model, wavs, [2], store=tmp_path / "whole.zarr", batch_size=4, progress=False)
    record = Attributes.update

    def die_on_second_record(self, values):
        if values.get("batches_done") == 2:
            raise KeyboardInterrupt
        record(self, values)

    monkeypatch.setattr(Attributes, "update", die_on_second_record)
    with pytest.raises(KeyboardInterrupt):
        extract(model, wavs, [2], store=tmp_path / "cut.zarr", batch_size=4, progress=False)
    monkeypatch.setattr(Attributes, "update", record)
    resumed = extract(model, wavs, [2], store=tmp_path / "cut.zarr", batch_size=4, progress=False)
    xr.testing.assert_equal(resumed.activations.load(), whole.activations.load())
