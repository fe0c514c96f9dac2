"""The phone probe's classifier: every layer's softmax regression fitted at once (preconditioned
L-BFGS in torch) on scikit-learn's objective, against scikit-learn's own LogisticRegression on
standardised frames, the slow obviously-correct reference; and the probe's speaker-disjoint split."""

from __future__ import annotations

import numpy as np
import pytest

from probes.phones import fit_predict


def _layers(seed=0, layers=3, n=1500, m=600, dim=12, classes=6):
    """Gaussian classes whose separation differs by layer (so the accuracies differ)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, dim))
    y, y_test = rng.integers(0, classes, n), rng.integers(0, classes, m)
    scale = 3.0 * rng.random(dim) + 0.1  # unequal feature scales: standardising matters
    x = np.stack([(centres[y] * s + rng.standard_normal((n, dim))) * scale + 5.0
                  for s in np.linspace(0.3, 1.5, layers)]).astype(np.float32)  # fmt: skip
    x_test = np.stack([(centres[y_test] * s + rng.standard_normal((m, dim))) * scale + 5.0
                       for s in np.linspace(0.3, 1.5, layers)]).astype(np.float32)  # fmt: skip
    return x, y, x_test, y_test


@pytest.mark.parametrize("many_dims", [False, True])
@pytest.mark.parametrize("regularization", [1.0, 0.01])
def test_predictions_match_scikit_learn(regularization, many_dims, monkeypatch):
    """Both layouts of the fit: with few dims the intercept rides in the products as a column of
    ones; with many (forced here on a small problem) it is added and summed on its own."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import probes.phone_fit as phone_fit

    if many_dims:
        monkeypatch.setattr(phone_fit, "FEW_DIMS", 0)
    x, y, x_test, y_test = _layers()
    ours = fit_predict(x, y, x_test, regularization)
    assert ours.shape == (len(x), len(y_test))
    for layer in range(len(x)):
        reference = make_pipeline(
            StandardScaler(), LogisticRegression(C=regularization, max_iter=2000, tol=1e-8)
        ).fit(x[layer], y)
        theirs = reference.predict(x_test[layer])
        # The same convex objective, both solved to convergence: the same predictions but for
        # frames within rounding of a decision boundary.
        assert np.mean(ours[layer] == theirs) >= 0.995
        assert abs(np.mean(ours[layer] == y_test) - np.mean(theirs == y_test)) <= 0.005


def test_works_under_inference_mode():
    """A grid probes under torch.inference_mode(); the fit needs gradients all the same."""
    import torch

    x, y, x_test, _ = _layers(layers=1, n=200, m=50)
    with torch.inference_mode():
        assert fit_predict(x, y, x_test).shape == (1, 50)


def _scikit_learn(x, y, x_test, **options):
    """The reference: StandardScaler + LogisticRegression (lbfgs) per layer, one after another."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return np.stack([
            make_pipeline(StandardScaler(), LogisticRegression(**options)).fit(x[layer], y)
            .predict(x_test[layer]) for layer in range(len(x))
        ])  # fmt: skip


def test_accuracy_matches_the_probes_former_classifier():
    """What the probe fitted before, scikit-learn with its default tolerance and 300 iterations,
    on a harder planted problem (more dims, more classes, correlated features): held-out accuracy
    within one point in every layer."""
    rng = np.random.default_rng(1)
    x, y, x_test, y_test = _layers(seed=1, layers=3, n=3000, m=1500, dim=40, classes=12)
    mixing = rng.standard_normal((40, 40)).astype(np.float32)  # correlated: ill-conditioned
    x, x_test = x @ mixing, x_test @ mixing
    ours = fit_predict(x, y, x_test)
    theirs = _scikit_learn(x, y, x_test, C=1.0, max_iter=300)
    for layer in range(len(x)):
        accuracy = np.mean(ours[layer] == y_test), np.mean(theirs[layer] == y_test)
        assert abs(accuracy[0] - accuracy[1]) <= 0.01, (layer, accuracy)


def test_layers_are_fitted_independently():
    """Each layer has its own history, line search and stopping: a layer fitted among others
    predicts as when fitted alone, though the others stop at other iterations."""
    x, y, x_test, _ = _layers(seed=2, layers=4, n=1200, m=500, dim=10, classes=5)
    together = fit_predict(x, y, x_test)
    for layer in range(len(x)):
        alone = fit_predict(x[layer : layer + 1], y, x_test[layer : layer + 1])[0]
        assert np.mean(alone == together[layer]) >= 0.998


def test_stops_after_max_iter_and_at_the_tolerance():
    """Zero iterations leave the weights at zero (the first class everywhere); a loose tolerance
    stops earlier than a tight one, and both predict nearly alike on an easy problem."""
    x, y, x_test, _ = _layers(seed=3, layers=2, n=800, m=300)
    assert (fit_predict(x, y, x_test, max_iter=0) == 0).all()
    loose, tight = (
        fit_predict(x, y, x_test, tolerance=1e-2),
        fit_predict(x, y, x_test, tolerance=1e-7),
    )
    assert np.mean(loose == tight) >= 0.9


def test_constant_and_duplicated_features():
    """A frame dimension that never varies (StandardScaler leaves it at zero) or that repeats
    another does not break the fit (the penalty keeps the preconditioner invertible)."""
    x, y, x_test, y_test = _layers(seed=4, layers=2, n=600, m=300, dim=6, classes=4)
    x = np.concatenate([x, np.full_like(x[:, :, :1], 3.0), x[:, :, :2]], axis=2)
    x_test = np.concatenate([x_test, np.full_like(x_test[:, :, :1], 3.0), x_test[:, :, :2]], axis=2)
    ours = fit_predict(x, y, x_test)
    theirs = _scikit_learn(x, y, x_test, C=1.0, max_iter=2000, tol=1e-8)
    assert (np.mean(ours == theirs, axis=1) >= 0.99).all()


def test_split_is_speaker_disjoint_seeded_and_subsampled():
    from probes.phones import SILENCE, split_frames

    rng = np.random.default_rng(5)
    speakers = rng.choice([f"s{i}" for i in range(10)], 5000)
    labels = rng.choice(["a", "b", SILENCE], 5000)
    train, test, held_out = split_frames(labels, speakers, test_speakers=0.3, max_train_frames=800)
    assert len(held_out) == 3 and len(train) == 800
    assert set(speakers[test]) == set(held_out) and not set(speakers[train]) & set(held_out)
    assert SILENCE not in set(labels[train]) | set(labels[test])
    assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)
    again = split_frames(labels, speakers, test_speakers=0.3, max_train_frames=800)
    assert all(np.array_equal(a, b) for a, b in zip((train, test), again[:2], strict=True))
    other = split_frames(labels, speakers, test_speakers=0.3, max_train_frames=800, seed=1)
    assert not np.array_equal(train, other[0])
    # Silence kept on request; one speaker at least stays on each side.
    train, test, held_out = split_frames(labels, speakers, test_speakers=0.99, include_silence=True)
    assert len(held_out) == 9 and SILENCE in set(labels[train])


def test_chunked_and_whole_evaluation_agree(monkeypatch):
    """The objective is summed over chunks of frames that stay in cache; over one chunk of all
    frames it is the same sums (up to float32 rounding), so both predict alike."""
    import probes.phone_fit as phone_fit

    x, y, x_test, _ = _layers(seed=6, layers=2, n=1000, m=400, dim=8, classes=5)
    monkeypatch.setattr(phone_fit, "CACHE_FLOATS", 2 * 5 * 97)  # chunks of 97 frames
    chunked = fit_predict(x, y, x_test)
    monkeypatch.setattr(phone_fit, "CACHE_FLOATS", 1 << 40)  # one chunk
    monkeypatch.setattr(phone_fit, "FRAME_FLOATS", 1 << 40)
    whole = fit_predict(x, y, x_test)
    assert np.mean(chunked == whole) >= 0.998


def test_standardise_is_scikit_learns_and_its_covariance_numpys():
    """One float32 copy standardised as StandardScaler does (a constant dim keeps scale 1), and
    the standardised frames' covariance, from the Gram matrix's lower triangle in panels."""
    import torch
    from sklearn.preprocessing import StandardScaler

    from probes.phone_fit import lower_gram, standardise

    rng = np.random.default_rng(7)
    frames = (rng.standard_normal((2, 500, 45)) * rng.exponential(3.0, 45) + 7.0).astype(np.float32)
    frames[:, :, 3] = 2.5  # never varies
    before = frames.copy()
    x, mean, scale, covariance = standardise(torch, frames)
    assert np.array_equal(frames, before)  # the caller's frames are left alone
    with_ones = standardise(torch, frames, ones=True)[0]
    assert with_ones.shape == (2, 500, 46) and (with_ones[:, :, 45] == 1).all()
    assert torch.equal(with_ones[:, :, :45], x)
    for layer in range(2):
        reference = StandardScaler().fit(frames[layer].astype(np.float64))
        np.testing.assert_allclose(mean[layer, 0], reference.mean_, rtol=1e-5)
        np.testing.assert_allclose(scale[layer, 0], reference.scale_, rtol=1e-4)
        z = reference.transform(frames[layer].astype(np.float64))
        np.testing.assert_allclose(x[layer], z, atol=1e-4)
        np.testing.assert_allclose(covariance[layer], z.T @ z / len(z), atol=1e-5)
    wide = torch.from_numpy(frames)
    for panel in (1, 7, 45, 64):  # uneven last panel, one panel, wider than the dims
        gram = lower_gram(torch, wide, panel=panel).numpy()
        full = np.einsum("lnd,lne->lde", frames.astype(np.float64), frames.astype(np.float64))
        np.testing.assert_allclose(np.tril(gram), np.tril(full), rtol=1e-5, atol=1e-2)
        blocks = np.arange(45) // panel
        assert not gram[:, blocks[:, None] < blocks[None, :]].any()  # no work above the blocks


def test_a_class_absent_from_training_or_a_single_class():
    """Class ids need not all occur in training (the per-class preconditioning stays finite); an
    absent class is never predicted, and a single class is predicted everywhere."""
    x, y, x_test, _ = _layers(seed=8, layers=2, n=600, m=300, dim=6, classes=4)
    y = np.where(y == 1, 3, y)  # class 1 absent: ids 0, 2, 3
    predicted = fit_predict(x, y, x_test)
    assert set(np.unique(predicted)) <= {0, 2, 3} and len(np.unique(predicted)) == 3
    assert (fit_predict(x, np.zeros_like(y), x_test) == 0).all()
