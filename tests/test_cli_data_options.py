"""The command-line options that say where data is: `--regions` (region features in a public layout),
`--wavs` (an item file's audio elsewhere than wavs/ beside it) and `--allow-outside-root` (paths that
leave their folder, refused by name unless allowed), and `probes.abx(..., allow_outside=True)`.

Each test reads the same audio or features through the option and through the plain layout, and the
numbers must agree exactly; without the option the command must stop with one named error (exit 2).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from public_layouts import relay_spokencoco

from analysis.cli import main
from training import SSLVGS, preset
from training.data import read_items, write_items
from training.data.spokencoco import SpokenCocoError
from training.run.checkpoints import save_checkpoint
from training.run.config import config_to_dict

LAYER = 2


def recall_rows(argv: list[str], capsys: pytest.CaptureFixture) -> list[dict]:
    """`sslvgs recall ... --json`'s rows (direction, k, recall)."""
    assert main([*argv, "--json", "--no-progress"]) == 0
    return json.loads(capsys.readouterr().out)["recall"]


def refused(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    """The one error line of a command that must stop on bad input (exit status 2)."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    return err


def linked_copy(folder: Path, where: Path, *, leave_out: tuple[str, ...] = ()) -> Path:
    """`folder` under another path, each entry a link to the original (but those in `leave_out`)."""
    where.mkdir(parents=True)
    for entry in folder.iterdir():
        if entry.name not in leave_out:
            (where / entry.name).symlink_to(entry)
    return where


# ---- --regions: LXMERT TSV and FaST-VGS HDF5 ----------------------------------------------------


@pytest.fixture(scope="module")
def lxmert_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny model that takes 2048-d regions (LXMERT's), as one checkpoint file."""
    torch.manual_seed(0)
    model_cfg, _ = preset("tiny", region_dim=2048)
    path = tmp_path_factory.mktemp("lxmert") / "model.pt"
    state = SSLVGS(model_cfg).state_dict()
    save_checkpoint(path, {"model_config": config_to_dict(model_cfg), "model": state, "epoch": 0})
    return path


def test_recall_reads_regions_given_as_lxmert_tsv_or_fast_vgs_hdf5(
    small_corpus: Path, lxmert_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    public = relay_spokencoco(small_corpus, tmp_path / "public")
    recall = ["recall", str(lxmert_checkpoint), str(public["coco"]), "-k", "1", "5"]
    # Karpathy's SpokenCOCO folder has no regions/ of its own: without --regions, a named error.
    assert "regions" in refused([*recall, "--no-progress"], capsys)
    via_tsv = recall_rows([*recall, "--regions", *map(str, public["tsvs"])], capsys)
    via_hdf5 = recall_rows([*recall, "--regions", str(public["hdf5_dir"])], capsys)
    assert via_tsv == via_hdf5
    assert sorted(row["k"] for row in via_tsv) == [1, 1, 5, 5]  # both directions
    assert all(0 <= row["recall"] <= 1 for row in via_tsv)


# ---- --allow-outside-root: a split whose wav leaves the corpus ------------------------------------


def test_a_split_wav_outside_the_corpus_is_refused_unless_allowed(
    tiny_run: Path, small_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    corpus = linked_copy(small_corpus, tmp_path / "corpus", leave_out=("spokencoco_test.json",))
    split = json.loads((small_corpus / "spokencoco_test.json").read_text())
    caption = split["data"][0]["captions"][0]
    outside = tmp_path / "elsewhere" / "moved.wav"
    outside.parent.mkdir()
    os.link(small_corpus / caption["wav"], outside)
    caption["wav"] = "../elsewhere/moved.wav"  # the same audio, now outside the corpus root
    (corpus / "spokencoco_test.json").write_text(json.dumps(split))

    recall = ["recall", str(tiny_run), str(corpus), "--split", "test"]
    err = refused([*recall, "--no-progress"], capsys)
    assert "spokencoco_test.json: entry 0, caption 0: path '../elsewhere/moved.wav' leaves" in err
    assert "--allow-outside-root" in err
    allowed = recall_rows([*recall, "--allow-outside-root"], capsys)
    assert allowed == recall_rows(["recall", str(tiny_run), str(small_corpus)], capsys)


# ---- --wavs and allow_outside for ABX item files ------------------------------------------------


@pytest.fixture(scope="module")
def abx_run(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tiny run, so that these tests' activation stores stay out of the shared run."""
    return Path(shutil.copytree(tiny_run, tmp_path_factory.mktemp("abx_run") / "run"))


@pytest.fixture(scope="module")
def reference_error(abx_run: Path, small_corpus: Path) -> float:
    """ABX error of layer LAYER on the corpus's captions set, read from its own layout."""
    from probes import abx

    items = small_corpus / "abx" / "captions" / "items.item"
    return float(abx(abx_run, LAYER, items, progress=False))


def test_abx_model_reads_the_item_files_audio_from_wavs(
    abx_run: Path,
    small_corpus: Path,
    reference_error: float,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    items = tmp_path / "set" / "items.item"
    items.parent.mkdir()
    shutil.copyfile(small_corpus / "abx" / "captions" / "items.item", items)
    audio = linked_copy(small_corpus / "abx" / "captions" / "wavs", tmp_path / "audio")
    command = ["abx", str(items), "--model", str(abx_run), "--layer", str(LAYER), "--json"]
    refused([*command, "--no-progress"], capsys)  # no wavs/ beside the item file
    assert main([*command, "--wavs", str(audio), "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["score"] == reference_error


def test_abx_allow_outside_reads_item_files_that_leave_their_wavs(
    abx_run: Path, small_corpus: Path, reference_error: float, tmp_path: Path
) -> None:
    from probes import abx

    captions = small_corpus / "abx" / "captions"
    table = read_items(captions / "items.item")
    table["file"] = [f"../elsewhere/{name}" for name in table["file"]]
    items = write_items(tmp_path / "set" / "items.item", table)
    (tmp_path / "set" / "wavs").mkdir()
    linked_copy(captions / "wavs", tmp_path / "set" / "elsewhere")
    with pytest.raises(SpokenCocoError, match=r"items.item:2 \(#file \.\./elsewhere/.*\): path"):
        abx(abx_run, LAYER, items, progress=False)
    scored = abx(abx_run, LAYER, items, allow_outside=True, progress=False)
    assert float(scored) == reference_error
