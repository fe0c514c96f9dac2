"""A linear phone probe: how linearly decodable phones are from each layer's frames.

Frames are labelled with the phone whose alignment interval holds the frame's centre time (the
corpus's `alignments/<split>/<uttid>.txt`; silence is left out by default, as in ABX). Speakers
are split in two (seeded): a logistic regression is fitted on the frames of one group and its frame
accuracy measured on the other, so the probe cannot lean on speaker identity.

The classifiers of all layers are fitted at once: one multinomial logistic regression per layer on
standardised frames, with scikit-learn's objective (C times the summed cross-entropy plus half the
squared weights, intercept free), minimised by L-BFGS in torch over a [layers, dim, phones] weight
tensor, so each iteration is one batched matrix product for every layer together.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from probes.vocabulary import Layers

__all__ = ["phone_probe", "frame_labels", "fit_predict"]

SILENCE = "SIL"


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
    from probes.activations import extract
    from probes.models import as_layered_model, corpus_of
    from probes.sources import CorpusSplit

    layered = as_layered_model(model)
    root = corpus_of(layered, corpus)
    dataset = extract(
        layered, CorpusSplit(root, split), layers, progress=progress, **extract_options
    )
    labels = frame_labels(dataset, root / "alignments" / split)
    speakers = dataset.speaker.values[dataset.utt.values]
    keep = np.ones(len(labels), bool) if include_silence else labels != SILENCE
    train, test, held_out = _speaker_split(speakers, keep, test_speakers, seed)
    rng = np.random.default_rng(seed)
    if len(train) > max_train_frames:
        train = np.sort(rng.choice(train, max_train_frames, replace=False))
    activations = dataset.activations
    train_x = np.stack(
        [activations.sel(layer=layer).values[train] for layer in dataset.layer.values]
    ).astype(np.float32, copy=False)
    test_x = np.stack(
        [activations.sel(layer=layer).values[test] for layer in dataset.layer.values]
    ).astype(np.float32, copy=False)
    phones, train_y = np.unique(labels[train], return_inverse=True)
    predicted = fit_predict(train_x, train_y, test_x, regularization)
    values = [float(np.mean(phones[p] == labels[test])) for p in predicted]
    _, counts = np.unique(labels[test], return_counts=True)
    return xr.DataArray(
        values,
        dims=("layer",),
        coords={"layer": dataset.layer.values},
        name="phone_accuracy",
        attrs={"probe": "phone", "chance": float(counts.max() / counts.sum()), "split": split,
               "train_frames": len(train), "test_frames": len(test),
               "phones": len(np.unique(labels[keep])), "test_speakers": held_out,
               "model": dataset.attrs.get("model", "")},
    )  # fmt: skip


def fit_predict(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    regularization: float = 1.0,
    *,
    max_iter: int = 300,
    tolerance: float = 1e-4,
) -> np.ndarray:
    """Fit one softmax classifier per layer at once; predict the test frames.

    Args:
        train_x: [L, N, D] frames of each layer; train_y: [N] class ids 0..K-1.
        test_x: [L, M, D].
        regularization: C of scikit-learn's LogisticRegression (its objective, its default 1.0).
        max_iter: L-BFGS iterations (scikit-learn's lbfgs default).
        tolerance: L-BFGS gradient tolerance (scikit-learn's default, on the same per-frame scaling
            of the objective).
    Returns:
        [L, M] predicted class ids.
    """
    import torch

    # Callers may hold inference mode (a grid does): the fit needs gradients.
    with torch.inference_mode(False), torch.enable_grad():
        return _fit_predict(torch, train_x, train_y, test_x, regularization, max_iter, tolerance)


def _fit_predict(torch, train_x, train_y, test_x, regularization, max_iter, tolerance):
    x = torch.from_numpy(np.ascontiguousarray(train_x))
    mean = x.mean(dim=1, keepdim=True)
    scale = x.std(dim=1, unbiased=False, keepdim=True)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # StandardScaler's rule
    x = (x - mean) / scale
    y = torch.from_numpy(np.asarray(train_y, np.int64))
    layers, n, dim = x.shape
    classes = int(y.max()) + 1
    weights = torch.zeros(layers, dim + 1, classes, requires_grad=True)
    ones = torch.ones(layers, n, 1)
    x1 = torch.cat([x, ones], dim=2)
    penalty = torch.ones(dim + 1, 1)
    penalty[-1] = 0.0  # the intercept is not penalised
    optimizer = torch.optim.LBFGS(
        [weights], lr=1, max_iter=max_iter, tolerance_grad=tolerance, tolerance_change=1e-9,
        history_size=20, line_search_fn="strong_wolfe",
    )  # fmt: skip
    targets = y.repeat(layers)

    def closure():
        optimizer.zero_grad()
        logits = torch.bmm(x1, weights).reshape(layers * n, classes)
        # per layer: mean cross-entropy + |W|^2 / (2 C N), scikit-learn's objective divided by C N
        loss = torch.nn.functional.cross_entropy(logits, targets, reduction="sum") / n
        loss = loss + (weights.pow(2) * penalty).sum() / (2 * regularization * n)
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        test = (torch.from_numpy(np.ascontiguousarray(test_x)) - mean) / scale
        logits = torch.bmm(test, weights[:, :-1]) + weights[:, -1:]
        return logits.argmax(dim=2).numpy()


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
