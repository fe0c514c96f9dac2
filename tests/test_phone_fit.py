"""The phone probe's classifier: every layer's softmax regression fitted at once (torch L-BFGS) on
scikit-learn's objective, against scikit-learn's own LogisticRegression on standardised frames."""

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


@pytest.mark.parametrize("regularization", [1.0, 0.01])
def test_predictions_match_scikit_learn(regularization):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

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
