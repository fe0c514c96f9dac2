"""Shared fixtures: one small embedded corpus and one tiny trained run per test session.

Building them is the expensive part of the suite, so every test that needs data reuses these.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Small enough to build in about a minute on 2 cores, large enough for recall and ABX to mean something.
SMALL_CORPUS_IMAGES = 60


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A corpus built by `training.corpus.build_corpus` (seed 0), shared by the whole session.

    It is the clean corpus (no per-utterance variation): the tests of trained models compare a
    3-epoch run with its initialisation, which 60 noisy images do not separate. The natural corpus,
    the default, has its own tests (test_corpus_variation.py) and the learning test trains on it.
    """
    from training.corpus import build_corpus

    out = tmp_path_factory.mktemp("corpus")
    build_corpus(out, images=SMALL_CORPUS_IMAGES, seed=0, variation="clean", progress=False)
    return out


# A few epochs of the tiny preset: enough checkpoints for epoch-by-layer grids, about a minute.
TINY_RUN_EPOCHS = 3


@pytest.fixture(scope="session")
def tiny_run(small_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short tiny VGS+ run on `small_corpus` (run dir with config.json, metrics.jsonl and one
    checkpoint per epoch), shared by the whole session; validation recall on the test split."""
    from training import train

    run = tmp_path_factory.mktemp("tiny_run") / "run"
    return train(
        small_corpus,
        run,
        preset="tiny",
        schedule="vgs+",
        stage_epochs=TINY_RUN_EPOCHS,
        eval_split="test",
        progress=False,
    )


@pytest.fixture(scope="session")
def quick_reproduction(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`sslvgs reproduce OUT --quick`, once per session: the reproduction and notebook tests share it."""
    from analysis.cli import main

    # A relative output path, as `make demo` gives one: what the folder records must not depend on
    # the directory the command ran in (test_notebook moves it).
    parent = tmp_path_factory.mktemp("reproduce")
    cwd = os.getcwd()
    os.chdir(parent)
    try:
        assert main(["reproduce", "out", "--quick", "--no-progress"]) == 0
    finally:
        os.chdir(cwd)
    return parent / "out"
