"""A linear phone probe: how linearly decodable phones are from each layer's frames.

Frames are labelled with the phone whose alignment interval holds the frame's centre time (the
corpus's `alignments/<split>/<uttid>.txt`; silence is left out by default, as in ABX). Speakers
are split in two (seeded): a logistic regression is fitted on the frames of one group and its frame
accuracy measured on the other, so the probe cannot lean on speaker identity.

The classifiers of all layers are fitted at once: one multinomial logistic regression per layer on
standardised frames, with scikit-learn's objective and stopping rule (`fit_predict`). What makes it
fast is a preconditioner: the weights are searched as W = P V, where P P^T inverts the frames'
covariance (divided by the number of phones, plus the penalty), so that the problem L-BFGS sees is
about equally curved in every direction, and it needs several times fewer iterations than
scikit-learn's L-BFGS on W itself. The objective, and so its minimum, is unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

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
# Logits per chunk of frames in the fit: about 1 MB, within a core's L2 cache.
CACHE_FLOATS = 1 << 18
# Below this many dims every op of the fit is small and runs on one thread: a parallel region
# would cost more than it saves (far more on a loaded machine, where each waits for a time slice).
SERIAL_BELOW_DIMS = 256


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
    from probes.sources import CorpusSplit

    layered = as_layered_model(model)
    root = corpus_of(layered, corpus)
    dataset = extract(
        layered, CorpusSplit(root, split), layers, progress=progress, **extract_options
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


def fit_predict(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    regularization: float = 1.0,
    *,
    max_iter: int = 300,
    tolerance: float = 1e-4,
    memory: int = 30,
) -> np.ndarray:
    """Fit one softmax classifier per layer at once; predict the test frames.

    Each layer's classifier minimises scikit-learn's LogisticRegression objective on frames
    standardised as its StandardScaler does: the mean cross-entropy plus |W|^2 / (2 C N), the
    intercept unpenalised. Like scikit-learn's lbfgs it starts from zero and stops a layer after
    `max_iter` iterations or once the largest entry of that layer's gradient (weights and
    intercept) is at most `tolerance`, or when float32 cannot decrease it any further.

    Args:
        train_x: [L, N, D] frames of each layer; train_y: [N] class ids 0..K-1.
        test_x: [L, M, D].
        regularization: C of scikit-learn's LogisticRegression (its default 1.0).
        max_iter: L-BFGS iterations (scikit-learn's default for lbfgs is 100, the probe used 300).
        tolerance: gradient tolerance (scikit-learn's `tol`).
        memory: L-BFGS history (curvature pairs kept).
    Returns:
        [L, M] predicted class ids.
    """
    import torch

    threads = torch.get_num_threads()
    if np.shape(train_x)[2] < SERIAL_BELOW_DIMS:
        torch.set_num_threads(1)
    try:
        return _fit_predict(
            torch, train_x, train_y, test_x, regularization, max_iter, tolerance, memory
        )
    finally:
        torch.set_num_threads(threads)


def _fit_predict(torch, train_x, train_y, test_x, regularization, max_iter, tolerance, memory):
    # Callers may hold inference mode (a grid does); nothing here needs autograd.
    with torch.inference_mode(False), torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(train_x, dtype=np.float32))
        mean = x.mean(dim=1, keepdim=True)
        scale = x.std(dim=1, unbiased=False, keepdim=True)
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # StandardScaler's rule
        x = (x - mean) / scale
        y = torch.from_numpy(np.asarray(train_y, np.int64))
        problem = _Softmax(torch, x, y, int(y.max()) + 1, regularization)
        del x  # the problem holds the standardised frames
        weights, bias = _lbfgs(
            torch, problem, max_iter=max_iter, tolerance=tolerance, memory=memory
        )
        test = (torch.from_numpy(np.ascontiguousarray(test_x, dtype=np.float32)) - mean) / scale
        return torch.baddbmm(bias[:, None, :], test, weights).argmax(dim=2).numpy()


class _Softmax:
    """Each layer's objective and gradient in preconditioned coordinates theta = (V, c).

    The weights are W = P V and the intercept b = sqrt(K) c, with P = R^-T for R R^T = S / K +
    I / (C N) (S the frames' covariance): at W = 0 the objective's Hessian in V is then about the
    identity (the softmax's curvature is about 1/K per class with uniform probabilities).
    """

    def __init__(self, torch, x, y, classes, regularization):
        self.torch, self.x, self.y = torch, x, y
        self.onehot = torch.nn.functional.one_hot(y, classes).to(x.dtype)  # [N, K]
        layers, n, dim = x.shape
        self.dim, self.classes = dim, classes
        self.penalty = 1.0 / (regularization * n)
        covariance = torch.bmm(x.transpose(1, 2), x).double() / n
        covariance.diagonal(dim1=1, dim2=2).add_(self.penalty * classes)
        factor = torch.linalg.cholesky(covariance / classes)
        identity = torch.eye(dim, dtype=torch.float64).expand(layers, dim, dim)
        inverse = torch.linalg.solve_triangular(factor, identity, upper=False)
        self.precondition = inverse.transpose(1, 2).float().contiguous()  # [L, D, D]
        self.bias_scale = math.sqrt(classes)
        self.size = dim * classes + classes

    def keep(self, rows):
        """Drop the layers whose fit is over (rows: [A] bool, those that go on)."""
        self.x, self.precondition = self.x[rows], self.precondition[rows]

    def weights(self, theta, rows=None):
        """W [A, D, K] and b [A, K] from theta [A, size] of the given rows (default: every layer
        still being fitted)."""
        precondition = self.precondition if rows is None else self.precondition[rows]
        v = theta[:, : self.dim * self.classes].reshape(len(theta), self.dim, self.classes)
        return self.torch.bmm(precondition, v), theta[:, -self.classes :] * self.bias_scale

    def __call__(self, theta, rows=None):
        """Objective [A] (float64), gradient in theta [A, size] and the largest entry of the
        gradient in (W, b) [A] (scikit-learn's convergence test) of the given rows."""
        torch = self.torch
        w, b = self.weights(theta, rows)
        x = self.x if rows is None else self.x[rows]
        layers, n = x.shape[:2]
        loss = torch.zeros(layers, dtype=torch.float64)
        grad_w, grad_b = w * self.penalty, torch.zeros_like(b)
        # Frames in chunks whose logits stay in cache: with few dims the fit is bound by memory
        # traffic over the [A, N, K] logits, not by arithmetic.
        size = (
            max(64, CACHE_FLOATS // (layers * self.classes)) if self.dim < SERIAL_BELOW_DIMS else n
        )
        for start in range(0, n, size):
            chunk, onehot = x[:, start : start + size], self.onehot[start : start + size]
            logits = torch.baddbmm(b[:, None, :], chunk, w)  # [A, c, K]
            log_p = torch.log_softmax(logits, dim=2)
            labels = self.y[None, start : start + size, None].expand(layers, -1, 1)
            loss -= log_p.gather(2, labels).sum(dim=(1, 2), dtype=torch.float64)
            residual = log_p.exp_().sub_(onehot)  # d (summed loss) / d logits
            grad_w.baddbmm_(chunk.transpose(1, 2), residual, alpha=1.0 / n)
            grad_b += residual.sum(dim=1) / n
        loss = loss / n + self.penalty / 2 * w.pow(2).sum(dim=(1, 2), dtype=torch.float64)
        largest = torch.maximum(grad_w.abs().amax(dim=(1, 2)), grad_b.abs().amax(dim=1))
        precondition = self.precondition if rows is None else self.precondition[rows]
        grad_v = torch.bmm(precondition.transpose(1, 2), grad_w)
        grad = torch.cat([grad_v.reshape(layers, -1), grad_b * self.bias_scale], dim=1)
        return loss, grad, largest


def _lbfgs(torch, problem, *, max_iter, tolerance, memory):
    """L-BFGS on every layer at once, each with its own history and line search; a layer leaves
    the batch when it stops. Returns W [L, D, K] and b [L, K]."""
    layers = len(problem.x)
    weights, biases = [None] * layers, [None] * layers
    origin = list(range(layers))  # the layer of each row still being fitted
    theta = torch.zeros(layers, problem.size)
    loss, grad, largest = problem(theta)
    steps, changes = torch.zeros(2, layers, memory, problem.size)
    inverse_curvature, gamma = torch.zeros(layers, memory), torch.ones(layers)
    stalled = torch.zeros(layers, dtype=torch.bool)
    for iteration in range(max_iter + 1):
        over = (largest <= tolerance) | stalled | (iteration == max_iter)
        if over.any():
            w, b = problem.weights(theta[over], over)
            for row, layer in enumerate(np.flatnonzero(over.numpy())):
                weights[origin[layer]], biases[origin[layer]] = w[row], b[row]
            go_on = ~over
            if not go_on.any():
                break
            problem.keep(go_on)
            origin = [layer for layer, on in zip(origin, go_on.tolist(), strict=True) if on]
            theta, loss, grad, steps, changes, inverse_curvature, gamma = (
                t[go_on] for t in (theta, loss, grad, steps, changes, inverse_curvature, gamma)
            )
        newest_first = [(iteration - 1 - j) % memory for j in range(min(iteration, memory))]
        direction = _two_loop(grad, steps, changes, inverse_curvature, gamma, newest_first)
        step, new = _line_search(torch, problem, theta, loss, grad, direction)
        change = new[1] - grad
        curvature, length = (step * change).sum(dim=1), (change * change).sum(dim=1)
        valid = curvature > 1e-10 * length  # the objective is convex: only rounding fails this
        slot = iteration % memory
        steps[:, slot], changes[:, slot] = step * valid[:, None], change * valid[:, None]
        inverse_curvature[:, slot] = torch.where(valid, 1 / curvature, 0)
        gamma = torch.where(valid, curvature / length, gamma)
        theta, (loss, grad, largest), stalled = theta + step, new[:3], new[3]
    return torch.stack(weights), torch.stack(biases)


def _two_loop(grad, steps, changes, inverse_curvature, gamma, newest_first):
    """The L-BFGS direction -H grad, batched over rows ([A, size]); H from the stored pairs."""
    q, alphas = grad.clone(), []
    for slot in newest_first:
        alpha = inverse_curvature[:, slot] * (steps[:, slot] * q).sum(dim=1)
        q -= alpha[:, None] * changes[:, slot]
        alphas.append(alpha)
    r = q * gamma[:, None]
    for slot, alpha in zip(reversed(newest_first), reversed(alphas), strict=True):
        beta = inverse_curvature[:, slot] * (changes[:, slot] * r).sum(dim=1)
        r += steps[:, slot] * (alpha - beta)[:, None]
    return -r


def _line_search(torch, problem, theta, loss, grad, direction, *, tries=20):
    """Per row, a step t * direction that decreases the objective, trying t = 1 first.

    A step is taken when it decreases the objective enough (Armijo) or when the objective still
    slopes down at it: the objective is convex, so it then decreased even where float32 rounding
    hides it. A refused step shrinks to the secant root of the slope (within 0.1..0.9 of it).
    Returns the step [A, size] and (objective, gradient, largest entry, stalled [A]) after it;
    a row that found no step stays where it was and is marked stalled.
    """
    slope = (grad * direction).sum(dim=1)
    uphill = slope >= 0  # rounding in a spent history: steepest descent instead
    if uphill.any():
        direction[uphill] = -grad[uphill]
        slope[uphill] = -(grad[uphill] ** 2).sum(dim=1)
    t = torch.ones(len(theta))
    new_loss, new_grad, new_largest = problem(theta + direction)
    pending = torch.ones(len(theta), dtype=torch.bool)
    for _ in range(tries):
        rows = pending.nonzero()[:, 0]
        new_slope = (new_grad[rows] * direction[rows]).sum(dim=1)
        taken = (new_loss[rows] <= loss[rows] + 1e-4 * t[rows] * slope[rows]) | (new_slope <= 0)
        pending[rows[taken]] = False
        if not pending.any():
            break
        rows, new_slope = rows[~taken], new_slope[~taken]
        ratio = (slope[rows] / (slope[rows] - new_slope)).nan_to_num(0.5).clamp(0.1, 0.9)
        t[rows] *= ratio
        at = theta[rows] + t[rows, None] * direction[rows]
        new_loss[rows], new_grad[rows], new_largest[rows] = problem(at, rows)
    t[pending] = 0
    new_loss[pending], new_grad[pending] = loss[pending], grad[pending]
    return t[:, None] * direction, (new_loss, new_grad, new_largest, pending)


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
