"""Recall@k: the chunked kernel agrees with a brute-force reading of the paper's protocol."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probes.retrieval import recall_at_k, retrieval_ranks
from training.retrieval import image_folds


def brute_force_recall(image_emb, audio_emb, owner, ks):
    """Sort every query's candidates by score, wrong answers before right ones on ties, and look."""
    scores = image_emb @ audio_emb.T  # [I, C]
    speech, image = [], []
    for c in range(audio_emb.shape[0]):
        order = sorted(range(image_emb.shape[0]), key=lambda i: (-scores[i, c], i == owner[c]))
        speech.append(order.index(owner[c]))
    for i in range(image_emb.shape[0]):
        own = [c for c in range(audio_emb.shape[0]) if owner[c] == i]
        if not own:
            continue
        order = sorted(range(audio_emb.shape[0]), key=lambda c: (-scores[i, c], owner[c] == i))
        image.append(min(order.index(c) for c in own))
    speech, image = np.array(speech), np.array(image)
    return np.array([[np.mean(speech < k) for k in ks], [np.mean(image < k) for k in ks]])


@st.composite
def retrieval_problems(draw):
    n_images = draw(st.integers(1, 7))
    n_captions = draw(st.integers(1, 12))
    dim = draw(st.integers(1, 3))
    # Small integers: dot products are exact, so ties are real ties and must be resolved by the rule.
    values = st.integers(-2, 2)
    image_emb = np.array(
        draw(
            st.lists(
                st.lists(values, min_size=dim, max_size=dim), min_size=n_images, max_size=n_images
            )
        ),
        dtype=np.float32,
    )
    audio_emb = np.array(
        draw(
            st.lists(
                st.lists(values, min_size=dim, max_size=dim),
                min_size=n_captions,
                max_size=n_captions,
            )
        ),
        dtype=np.float32,
    )
    owner = np.array(
        draw(st.lists(st.integers(0, n_images - 1), min_size=n_captions, max_size=n_captions))
    )
    return image_emb, audio_emb, owner


@settings(max_examples=150, deadline=None)
@given(retrieval_problems(), st.integers(1, 4), st.integers(1, 5))
def test_recall_matches_brute_force_with_ties_and_any_blocks(problem, block_images, block_captions):
    image_emb, audio_emb, owner = problem
    ks = [1, 2, 5]
    got = recall_at_k(
        image_emb, audio_emb, owner, ks, block_images=block_images, block_captions=block_captions
    )
    np.testing.assert_allclose(got.values, brute_force_recall(image_emb, audio_emb, owner, ks))


@settings(max_examples=100, deadline=None)
@given(retrieval_problems(), st.integers(1, 7), st.integers(1, 4), st.integers(1, 5))
def test_folds_rank_each_fold_on_its_own(problem, folds, block_images, block_captions):
    """COCO's 1k protocol: ranking within folds = ranking each fold's images and captions alone."""
    image_emb, audio_emb, owner = problem
    folds = min(folds, len(image_emb))
    speech, image = retrieval_ranks(
        image_emb, audio_emb, owner, folds=folds, block_images=block_images,
        block_captions=block_captions,
    )  # fmt: skip
    fold = image_folds(len(image_emb), folds)
    assert sorted(np.bincount(fold, minlength=folds))[-1] - min(np.bincount(fold)) <= 1
    for f in range(folds):
        members = np.flatnonzero(fold == f)
        captions = np.flatnonzero(np.isin(owner, members))
        local = np.searchsorted(members, owner[captions])
        alone = retrieval_ranks(image_emb[members], audio_emb[captions], local)
        np.testing.assert_array_equal(speech[captions], alone[0])
        np.testing.assert_array_equal(image[members], alone[1])


def test_folds_are_recorded_and_checked():
    rng = np.random.default_rng(0)
    images, audio = rng.standard_normal((10, 4)), rng.standard_normal((20, 4))
    owner = np.repeat(np.arange(10), 2)
    assert recall_at_k(images, audio, owner, folds=5).attrs["folds"] == 5
    for bad in (0, 11, 2.5):
        with pytest.raises(ValueError, match="folds"):
            recall_at_k(images, audio, owner, folds=bad)


def test_identical_embeddings_score_zero_not_chance():
    """A collapsed model ties everything: the pessimistic tie rule gives recall 0 at k < #candidates."""
    owner = np.repeat(np.arange(4), 5)
    got = recall_at_k(np.ones((4, 3)), np.ones((20, 3)), owner, (1, 3))
    assert (got.values == 0).all()


def test_perfect_embeddings_score_one_and_labels():
    owner = np.repeat(np.arange(6), 5)
    images = np.eye(6)
    got = recall_at_k(images, images[owner], owner, (1, 10))
    assert got.dims == ("direction", "k")
    assert list(got.direction.values) == ["speech_to_image", "image_to_speech"]
    assert (got.values == 1).all()


def test_image_without_captions_is_a_distractor_not_a_query():
    speech_rank, image_rank = retrieval_ranks(np.eye(3), np.eye(3)[:2], np.array([0, 1]))
    assert image_rank[2] == -1
    assert (speech_rank == 0).all()


def test_bootstrap_interval_brackets_the_estimate():
    rng = np.random.default_rng(0)
    owner = np.repeat(np.arange(40), 5)
    images = rng.standard_normal((40, 8))
    audio = images[owner] + 1.5 * rng.standard_normal((200, 8))
    got = recall_at_k(images, audio, owner, (1, 5), bootstrap=200, seed=1)
    assert (got.low <= got).all() and (got <= got.high).all()
    assert (got.high - got.low > 0).any()
    again = recall_at_k(images, audio, owner, (1, 5), bootstrap=200, seed=1)
    np.testing.assert_array_equal(got.low, again.low)


def test_large_problem_runs_in_bounded_blocks():
    """25k captions x 5k images at a block far smaller than the score matrix."""
    rng = np.random.default_rng(0)
    owner = np.repeat(np.arange(5000), 5)
    images = rng.standard_normal((5000, 16)).astype(np.float32)
    audio = images[owner] + rng.standard_normal((25000, 16)).astype(np.float32)
    got = recall_at_k(images, audio, owner, (1, 10), block_images=1000, block_captions=5000)
    assert (
        0
        < float(got.sel(direction="speech_to_image", k=1))
        < float(got.sel(direction="speech_to_image", k=10))
        <= 1
    )


@pytest.mark.parametrize(
    "k, owner, message",
    [((0,), [0, 1], "positive"), ((1,), [0, 5], "0..1"), ((1,), [0], "shape")],
)
def test_bad_input(k, owner, message):
    with pytest.raises(ValueError, match=message):
        recall_at_k(np.eye(2), np.eye(2), np.array(owner), k)


def test_non_finite_embeddings_are_refused_not_ranked():
    # A NaN row compares false with everything: ranked, it would read as a hit or a miss at random.
    images = np.eye(3, dtype=np.float32)
    images[1] = np.nan
    with pytest.raises(ValueError, match=r"image embedding 1 holds NaN or Inf"):
        recall_at_k(images, np.eye(3, dtype=np.float32), np.arange(3))
