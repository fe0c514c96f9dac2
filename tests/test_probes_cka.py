"""Linear CKA: the chunked feature-space estimators equal the n x n Gram-matrix definitions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import ortho_group

from probes import cka


def gram_cka(x, y, debiased):
    """Kornblith et al.'s reference: centred (or unbiasedly centred) Gram matrices, O(n^2)."""

    def centre(gram):
        gram = gram.copy()
        n = len(gram)
        if debiased:
            np.fill_diagonal(gram, 0)
            means = gram.sum(0) / (n - 2)
            means -= means.sum() / (2 * (n - 1))
        else:
            means = gram.mean(0) - gram.mean() / 2
        gram -= means[:, None] + means[None, :]
        if debiased:
            np.fill_diagonal(gram, 0)
        return gram

    gx, gy = centre(x @ x.T), centre(y @ y.T)
    return gx.ravel() @ gy.ravel() / (np.linalg.norm(gx) * np.linalg.norm(gy))


def representation(seed, n=60, d=12):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)) @ rng.standard_normal((d, d)) + 5 * rng.standard_normal(d)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(0, 10_000), st.integers(5, 40), st.integers(1, 9), st.booleans(), st.integers(1, 7)
)
def test_matches_gram_reference(seed, n, d, debiased, chunk):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)) + rng.standard_normal(d)
    y = np.tanh(x @ rng.standard_normal((d, 3))) + 0.5 * rng.standard_normal((n, 3))
    assert cka(x, y, debiased, chunk=chunk) == pytest.approx(gram_cka(x, y, debiased), abs=1e-9)


@pytest.mark.parametrize("debiased", [False, True])
def test_a_representation_with_itself_is_one(debiased):
    x = representation(0)
    assert cka(x, x, debiased) == pytest.approx(1.0)


@pytest.mark.parametrize("debiased", [False, True])
def test_invariant_to_orthogonal_transforms_isotropic_scaling_and_shifts(debiased):
    x, y = representation(1), representation(2)
    q = ortho_group.rvs(12, random_state=3)
    reference = cka(x, y, debiased)
    assert cka(x @ q, y, debiased) == pytest.approx(reference)
    assert cka(x, 7.5 * y, debiased) == pytest.approx(reference)
    assert cka(x + 100.0, y - 3.0, debiased) == pytest.approx(reference)


def test_not_invariant_to_anisotropic_scaling():
    """The invariance tests could not pass by accident: stretching one axis does change CKA."""
    x, y = representation(1), representation(2)
    stretch = np.ones(12)
    stretch[0] = 50.0
    assert abs(cka(x * stretch, y) - cka(x, y)) > 1e-3


def test_debiasing_removes_the_bias_of_independent_high_dimensional_noise():
    """Biased CKA of independent noise grows with D/n; the debiased estimate stays near 0."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((200, 400)), rng.standard_normal((200, 400))
    assert cka(x, y) > 0.5
    assert abs(cka(x, y, debiased=True)) < 0.05


def test_symmetric_and_bounded():
    x, y = representation(4), representation(5)[:, :5]
    assert cka(x, y) == pytest.approx(cka(y, x))
    assert 0.0 <= cka(x, y) <= 1.0


def test_bad_input():
    x = representation(0)
    with pytest.raises(ValueError, match="same items"):
        cka(x, x[:-1])
    with pytest.raises(ValueError, match="at least 4"):
        cka(x[:3], x[:3], debiased=True)
    with pytest.raises(ValueError, match="constant"):
        cka(np.ones((10, 3)), x[:10])
