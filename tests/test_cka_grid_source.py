"""CKA grids on a subset of an ABX set: the item file names the utterances, `wavs` where they are.

`analysis.collect` compares models on the captions the ABX grids probe (a subset item file written
elsewhere, whose wavs stay the corpus's), so the drift and similarity grids must read the subset's
utterances from the corpus's wav folder and give what `probes.similarity` gives on them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import analysis
import probes
import training
from analysis.paper.study import subset_items
from analysis.runs import checkpoints
from probes.sources import abx_set


@pytest.fixture(scope="module")
def subset(small_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    items = small_corpus / "abx" / "captions" / "items.item"
    return subset_items(items, tmp_path_factory.mktemp("subset") / "captions.item", 2)


def test_drift_on_a_subset_equals_similarity_on_its_utterances(
    tiny_run: Path, small_corpus: Path, subset: Path
) -> None:
    wavs = small_corpus / "abx" / "captions" / "wavs"
    found = checkpoints(tiny_run)
    first, last = found[min(found)], found[max(found)]
    grid = analysis.drift(
        tiny_run, first, epochs=[max(found)], layers=[0, 2], source=str(subset), wavs=str(wavs),
        progress=False,
    )  # fmt: skip
    expected = probes.similarity(
        training.load_pretrained(last),
        training.load_pretrained(first),
        [0, 2],
        abx_set(subset, wavs),
        progress=False,
    )
    assert np.allclose(grid.sel(epoch=max(found)).values, np.diag(expected.values), atol=1e-9)
    # It compared the subset's utterances, not the whole set's: fewer frames than the full set.
    full = probes.extract(training.load_pretrained(first), small_corpus / "abx" / "captions", [0])
    assert expected.attrs["frames"] < int(full.n_frames.sum())


def test_an_item_file_without_wavs_beside_it_is_refused_by_name(
    tiny_run: Path, subset: Path
) -> None:
    found = checkpoints(tiny_run)
    with pytest.raises(Exception, match=str(subset.parent)):
        analysis.drift(
            tiny_run, found[min(found)], epochs=[max(found)], layers=[0], source=str(subset),
            progress=False,
        )  # fmt: skip
