"""A linear phone probe: how linearly decodable phones are from each layer's frames.

Frames are labelled with the phone whose alignment interval holds the frame's centre time (the
corpus's `alignments/<split>/<uttid>.txt`; silence is left out by default, as in ABX). Speakers
are split in two (seeded): a logistic regression is fitted on the frames of one group and its frame
accuracy measured on the other, so the probe cannot lean on speaker identity.

The classifiers of all layers are fitted at once: one multinomial logistic regression per layer on
standardised frames, with scikit-learn's objective and stopping rule (`fit_predict`, in
probes/phone_fit.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from probes.phone_fit import fit_predict
from probes.vocabulary import Layers

__all__ = [
    "phone_probe",
    "phone_frames",
    "PhoneFrames",
    "frame_labels",
    "split_frames",
    "fit_predict",
]

SILENCE = "SIL"


@dataclass
class PhoneFrames:
    """The probe's data: train and test frames of every layer, as `fit_predict` takes them.

    train_x: [L, N, D] float32; train_y: [N] class ids into `phones`; test_x: [L, M, D] float32;
    test_labels: [M] phone of each test frame (a phone may be absent from training).
    """

    layers: np.ndarray
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_labels: np.ndarray
    phones: np.ndarray
    attrs: dict


def phone_probe(
    model: Any,
    layers: Layers = "all",
    *,
    corpus: str | Path | None = None,
    split: str = "train",
    test_speakers: float = 0.3,
    max_train_frames: int = 20000,
    include_silence: bool = False,
    regularization: float = 1.0,
    seed: int = 0,
    progress: bool = True,
    **extract_options: Any,
) -> xr.DataArray:
    """Frame accuracy of a linear phone classifier on held-out speakers, per layer.

    Args:
        model: checkpoint file, run directory, SSLVGS or torchaudio Wav2Vec2Model.
        layers: "all", a layer, a list or a range of layers.
        corpus: corpus root (default: the run's); its `split` captions are the data.
        test_speakers: fraction of the speakers (at least one) whose frames are the test set.
        max_train_frames: train on at most this many frames (seeded subsample) to bound the cost.
        regularization: inverse regularisation strength C of the logistic regression.
    Returns:
        DataArray (layer) of test frame accuracy in 0..1; attrs: chance (majority phone's share
        of the test frames), train_frames, test_frames, phones, test_speakers.
    """
    frames = phone_frames(
        model, layers, corpus=corpus, split=split, test_speakers=test_speakers,
        max_train_frames=max_train_frames, include_silence=include_silence, seed=seed,
        progress=progress, **extract_options,
    )  # fmt: skip
    predicted = fit_predict(frames.train_x, frames.train_y, frames.test_x, regularization)
    values = [float(np.mean(frames.phones[p] == frames.test_labels)) for p in predicted]
    return xr.DataArray(
        values,
        dims=("layer",),
        coords={"layer": frames.layers},
        name="phone_accuracy",
        attrs={"probe": "phone", **frames.attrs},
    )


def phone_frames(
    model: Any,
    layers: Layers = "all",
    *,
    corpus: str | Path | None = None,
    split: str = "train",
    test_speakers: float = 0.3,
    max_train_frames: int = 20000,
    include_silence: bool = False,
    seed: int = 0,
    progress: bool = True,
    **extract_options: Any,
) -> PhoneFrames:
    """The frames `phone_probe` fits and scores (arguments as there), without fitting."""
    from probes.activations import extract
    from probes.models import as_layered_model, corpus_of
    from probes.sources import corpus_split

    layered = as_layered_model(model)
    root = corpus_of(layered, corpus)
    dataset = extract(
        layered, corpus_split(root, split), layers, progress=progress, **extract_options
    )
    labels = frame_labels(dataset, root / "alignments" / split)
    speakers = dataset.speaker.values[dataset.utt.values]
    train, test, held_out = split_frames(
        labels, speakers, test_speakers=test_speakers, max_train_frames=max_train_frames,
        include_silence=include_silence, seed=seed,
    )  # fmt: skip
    activations = dataset.activations
    train_x, test_x = (
        np.stack(
            [activations.sel(layer=layer).values[rows] for layer in dataset.layer.values]
        ).astype(np.float32, copy=False)
        for rows in (train, test)
    )
    phones, train_y = np.unique(labels[train], return_inverse=True)
    _, counts = np.unique(labels[test], return_counts=True)
    keep = np.ones(len(labels), bool) if include_silence else labels != SILENCE
    return PhoneFrames(
        layers=dataset.layer.values, train_x=train_x, train_y=train_y, test_x=test_x,
        test_labels=labels[test], phones=phones,
        attrs={"chance": float(counts.max() / counts.sum()), "split": split,
               "train_frames": len(train), "test_frames": len(test),
               "phones": len(np.unique(labels[keep])), "test_speakers": held_out,
               "model": dataset.attrs.get("model", "")},
    )  # fmt: skip


def split_frames(
    labels: np.ndarray,
    speakers: np.ndarray,
    *,
    test_speakers: float = 0.3,
    max_train_frames: int = 20000,
    include_silence: bool = False,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The probe's protocol: train and test frame indices of disjoint speakers (seeded), the train
    frames subsampled to at most `max_train_frames` (seeded), and the test speakers.

    Args:
        labels: [F] phone of each frame; speakers: [F] speaker of each frame.
    """
    keep = np.ones(len(labels), bool) if include_silence else labels != SILENCE
    train, test, held_out = _speaker_split(speakers, keep, test_speakers, seed)
    rng = np.random.default_rng(seed)
    if len(train) > max_train_frames:
        train = np.sort(rng.choice(train, max_train_frames, replace=False))
    return train, test, held_out


def frame_labels(dataset: xr.Dataset, alignments: Path) -> np.ndarray:
    """The phone at each frame's centre time, from `alignments/<uttid>.txt`.

    Returns:
        [frames] str array, aligned with the store's `frame` axis.
    Raises:
        FileNotFoundError: an utterance without an alignment file (named).
    """
    from training.data import read_alignment

    labels = np.full(dataset.sizes["frame"], SILENCE, dtype=object)
    times = dataset.time.values
    for uttid, offset, count in zip(
        dataset.utterance.values.tolist(), dataset.offset.values, dataset.n_frames.values,
        strict=True,
    ):  # fmt: skip
        path = alignments / f"{uttid}.txt"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no phone alignment for utterance {uttid}")
        rows = read_alignment(path)
        onsets = np.array([onset for onset, _, _ in rows])
        phones = np.array([phone for _, _, phone in rows], dtype=object)
        centre = times[offset : offset + count]
        # Frames past the last offset (padding of the conv/log-mel edge) stay silence.
        inside = centre < rows[-1][1]
        where = np.searchsorted(onsets, centre[inside], side="right") - 1
        labels[offset : offset + count][inside] = phones[where]
    return labels.astype(str)


def _speaker_split(
    speakers: np.ndarray, keep: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Frame indices of train and test speakers (disjoint), and the test speakers."""
    distinct = sorted(set(speakers[keep].tolist()))
    if len(distinct) < 2:
        raise ValueError(
            f"the phone probe needs frames of at least 2 speakers to split them, found {distinct}"
        )
    rng = np.random.default_rng(seed)
    n_test = min(max(1, round(fraction * len(distinct))), len(distinct) - 1)
    held_out = sorted(rng.choice(distinct, n_test, replace=False).tolist())
    is_test = np.isin(speakers, held_out)
    return np.flatnonzero(keep & ~is_test), np.flatnonzero(keep & is_test), held_out
