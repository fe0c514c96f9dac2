"""compat="librilight" against scores computed by zrc-abx2 0.9.8 (ZeroSpeech 2021's ABX), pinned.

The set is built here from a fixed seed: 6 files of 5-d random frames (5% all-zero), 2 speakers,
phones a/b/c, item boundaries on a 10 ms grid (half frames at 50 Hz, where libri-light's slicing in
doubles and its dropping of empty items matter). The expected values came from zrc-abx2 0.9.8 (with
torch 2.14.1) in its own environment, on this set written to disk (``write_set``):

    EvalABX().eval_abx(EvalArgs(path_data=ROOT/"features", path_item_file=ROOT/"items.item",
        file_extension=".npy", feature_size=0.02, speaker_mode=S, context_mode=C, distance_mode=D,
        max_size_group=10**9, max_x_across=10**9, pooling=P))[0]["score"]

(max_size_group and max_x_across larger than any group: no subsampling). benchmarks/abx_vs_zrc.py
runs the same comparison on larger sets when zrc-abx2 is installed. zrc-abx2 keeps its cell scores in
float32, so agreement is to ~1e-7, not to the last bit.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from probes.abx_engine import DroppedItemsWarning, load_feature_dir, score
from training.data import read_items

# zrc-abx2 takes the items in the order os.walk listed the feature files when the values were computed
# (ext4: f1, f4, f0, f2, f3, f5), and within one phone of one speaker computes d(x, a) with the earlier
# item's frames on the rows; compat mode follows the item file's order, so the item file lists the
# files in that order. (With another directory order zrc-abx2 itself gives another within-speaker
# euclidean score here: its trace-back meets float32 ties next to the zero frames' 2e12 distances.)
ZRC_FILE_ORDER = (1, 4, 0, 2, 3, 5)

# (speaker, context, distance, pooling) -> zrc-abx2's score; its "cosine" is our "angular".
ZRC_ABX2 = {
    ("within", "within", "angular", None): 0.47641095519065857,
    ("across", "within", "angular", None): 0.6376774907112122,
    ("within", "any", "angular", None): 0.5010820627212524,
    ("across", "any", "angular", None): 0.5020152926445007,
    ("within", "any", "euclidean", None): 0.5032429099082947,
    ("across", "within", "euclidean", None): 0.6419984698295593,
    ("within", "any", "angular", "mean"): 0.5033292174339294,
    ("across", "any", "angular", "mean"): 0.5067712664604187,
}


def write_set(root: Path) -> Path:
    """Write ROOT/features/f*.npy and ROOT/items.item (the set the pinned values were computed on)."""
    rng = np.random.default_rng(20261124)
    (root / "features").mkdir(parents=True, exist_ok=True)
    lines = {}
    for f in range(6):
        ticks = np.cumsum(rng.integers(1, 9, 24))  # boundaries in 10 ms ticks: half frames at 50 Hz
        phones = ["abc"[k] for k in rng.integers(0, 3, 23)]
        lines[f] = []
        for k in range(23):
            prev = phones[k - 1] if k else "SIL"
            nxt = phones[k + 1] if k < 22 else "SIL"
            onset, offset = ticks[k] / 100, ticks[k + 1] / 100
            lines[f].append(f"f{f} {onset:.2f} {offset:.2f} {phones[k]} {prev} {nxt} s{f % 2}")
        frames = rng.standard_normal((ticks[-1] // 2 + 1, 5)).astype(np.float32)
        frames[rng.random(len(frames)) < 0.05] = 0
        np.save(root / "features" / f"f{f}.npy", frames)
    header = "#file onset offset #phone prev-phone next-phone speaker"
    text = "\n".join([header, *(line for f in ZRC_FILE_ORDER for line in lines[f])])
    (root / "items.item").write_text(text + "\n")
    return root / "items.item"


@pytest.fixture(scope="module")
def zrc_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("zrc")
    items = read_items(write_set(root))
    return load_feature_dir(root / "features", items["file"].unique().tolist()), items


@pytest.mark.parametrize(("speaker", "context", "distance", "pooling"), list(ZRC_ABX2))
def test_compat_mode_gives_zrc_abx2_scores(zrc_set, speaker, context, distance, pooling):
    features, items = zrc_set
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DroppedItemsWarning)
        result = score(
            features,
            items,
            speaker=speaker,
            context=context,
            distance=distance,
            pooling=pooling,
            compat="librilight",
            frequency=1 / 0.02,  # zrc-abx2's 1 / feature_size
        )
    assert (
        result.meta["dropped_items"] > 0
    )  # the set exercises libri-light's dropping of empty items
    assert float(result) == pytest.approx(ZRC_ABX2[speaker, context, distance, pooling], abs=1e-6)
