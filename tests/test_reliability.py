"""Foreign or broken audio never gives a silently wrong number: the cases of docs/reliability.md
that are not a loader's (those are in test_pretrained_*.py).

Utterances too short for one frame of the model are skipped with a warning that names them, and
ABX refuses their items by item file and line (or drops them by name under compat="librilight");
they never take over another file's frames.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import soundfile
import torch
import torchaudio

import probes
from probes.abx_engine import DroppedItemsWarning, SliceError
from probes.activations import ShortAudioWarning

HEADER = "#file onset offset #phone prev-phone next-phone speaker\n"
CONV = [(16, 10, 5), (16, 3, 2), (16, 3, 2), (16, 3, 2), (16, 3, 2), (16, 2, 2), (16, 2, 2)]


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SSLVGS_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return torchaudio.models.wav2vec2_model(
        "group_norm", CONV, False, 32, 0.0, 16, 4, 2, 4, 0.0, 64, 0.0, 0.0, False, 0.0, None
    ).eval()


def abx_set(folder, short_samples=None):
    """Eight 0.5 s noise files (two speakers, items of phones a and b), and, when `short_samples`
    is given, a ninth file `zz` of that many samples whose item comes last in the item file."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    lines = []
    for f in range(8):
        soundfile.write(folder / f"f{f}.wav", 0.1 * rng.standard_normal(8000 + 160 * f), 16000)
        for k, phone in enumerate("abab"):
            lines.append(f"f{f} {0.1 * k:.2f} {0.1 * k + 0.08:.2f} {phone} x y s{f % 2}\n")
    if short_samples is not None:
        soundfile.write(folder / "zz.wav", np.zeros(short_samples), 16000)
        lines.append("zz 0.00 0.08 a x y s0\n")
    (folder / "items.item").write_text(HEADER + "".join(lines))
    return folder / "items.item"


@pytest.mark.parametrize("samples", [0, 1, 399])
def test_a_short_utterance_is_named_never_mapped_onto_another_file(model, tmp_path, samples):
    clean = abx_set(tmp_path / "clean")
    items = abx_set(tmp_path / "short", short_samples=samples)
    want = probes.abx(model, 1, items=clean, wavs=clean.parent, progress=False, compat="librilight")
    with pytest.warns(ShortAudioWarning, match=r"zz\.wav \(\d+ samples\)"):
        with pytest.warns(DroppedItemsWarning, match="zz"):
            got = probes.abx(
                model, 1, items=items, wavs=items.parent, progress=False, compat="librilight"
            )
    assert float(got) == pytest.approx(float(want)) and len(got.cells) == len(want.cells)
    # Without compat, the item is an error naming the item file, its line and the right file.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ShortAudioWarning)
        with pytest.raises(SliceError, match=r"items\.item:34: .*'zz'.*has 0 frames"):
            probes.abx(model, 1, items=items, wavs=items.parent, progress=False)


def test_extraction_stores_a_short_utterance_with_no_frames(model, tmp_path):
    items = abx_set(tmp_path / "short", short_samples=1)
    with pytest.warns(ShortAudioWarning, match="zz.wav"):
        store = probes.extract(model, items, [1], wavs=items.parent, progress=False)
    frames = dict(zip(store.utterance.values.tolist(), store.n_frames.values.tolist(), strict=True))
    assert frames["zz"] == 0 and min(v for k, v in frames.items() if k != "zz") > 0
