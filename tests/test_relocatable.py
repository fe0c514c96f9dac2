"""Outputs that travel: a run's config.json and a reproduction's reproduction.json record the paths
inside (or near) their folder relative to it, grid caches are keyed by what files hold rather than
where they are, and a recorded corpus that is gone is one line naming it (issue 23)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_analysis_grid import count, layer_norm, make_run

from analysis.gridding.driver import grid
from analysis.gridding.registry import make_spec
from analysis.paper.settings import reproduction_settings, store_paths
from training.run.directory import (
    CorpusMissingError,
    recorded_path,
    run_corpus,
    stored_path,
    write_json_atomic,
)
from training.run.request import RunRequest, plan_run


def test_paths_near_a_folder_are_stored_relative_to_it(tmp_path: Path) -> None:
    out = tmp_path / "project" / "out"
    run = out / "runs" / "VGS"
    assert stored_path(out / "corpus", run) == "../../corpus"
    assert stored_path(run / "checkpoints" / "epoch_0001.pt", run) == "checkpoints/epoch_0001.pt"
    assert recorded_path("../../corpus", run) == out / "corpus"
    # Far away (or only sharing the temporary folder or /): absolute, read back as it is.
    assert stored_path("/usr/share/corpus", run) == "/usr/share/corpus"
    assert recorded_path("/usr/share/corpus", run) == Path("/usr/share/corpus")


def test_a_run_moved_with_its_corpus_resumes_and_finds_it(tmp_path: Path) -> None:
    old = tmp_path / "old"
    run = plan_run(RunRequest(corpus=(old / "corpus").resolve(), run_dir=old / "runs" / "a"))
    config = run.config()
    assert config["corpus"] == "../../corpus"
    (old / "corpus").mkdir(parents=True)
    write_json_atomic(old / "runs" / "a" / "config.json", config)
    new = tmp_path / "new"
    shutil.move(old, new)
    assert run_corpus(new / "runs" / "a", check=True) == new / "corpus"
    resumed = plan_run(
        RunRequest(corpus=(new / "corpus").resolve(), run_dir=new / "runs" / "a", resume=True)
    )
    assert resumed.corpus == (new / "corpus").resolve()
    assert resumed.config() == config  # nothing to rewrite: the stored paths still hold


def test_an_old_absolute_config_still_reads(tmp_path: Path) -> None:
    corpus = tmp_path / "c"
    corpus.mkdir()
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text(json.dumps({"corpus": str(corpus)}))
    assert run_corpus(tmp_path / "run", check=True) == corpus


def test_a_corpus_that_is_gone_is_named_with_the_way_out(tmp_path: Path) -> None:
    run = tmp_path / "out" / "runs" / "a"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"corpus": "../../corpus"}))
    with pytest.raises(CorpusMissingError) as error:
        run_corpus(run, check=True)
    message = str(error.value)
    assert "\n" not in message
    assert str(tmp_path / "out" / "corpus") in message and "pass corpus=" in message
    assert "--corpus" in message
    # The grid's ABX probe, asked for a set by name, says the same before any work.
    with pytest.raises(CorpusMissingError, match="pass corpus="):
        make_spec("abx", {"items": "read"}, run)


def test_grid_cache_keys_follow_contents_not_places(tmp_path: Path) -> None:
    line = "#file onset offset #phone prev-phone next-phone speaker\na 0.0 0.1 p s s s1\n"
    for folder in ("one", "two"):
        (tmp_path / folder / "wavs").mkdir(parents=True)
        (tmp_path / folder / "items.item").write_text(line)
        (tmp_path / folder / "wavs" / "a.wav").write_bytes(b"RIFF")
    one, two = (
        make_spec("abx", {"items": tmp_path / f / "items.item", "wavs": str(tmp_path / f / "wavs")})
        for f in ("one", "two")
    )
    assert one.key == two.key
    (tmp_path / "two" / "wavs" / "b.wav").write_bytes(b"RIFF")
    again = make_spec(
        "abx", {"items": tmp_path / "two" / "items.item", "wavs": tmp_path / "two" / "wavs"}
    )
    assert again.key != one.key


def test_a_folder_key_follows_a_file_changed_below_it(tmp_path: Path) -> None:
    # A folder option is keyed by its listing (names and sizes of every file below it), also one
    # folder down, and the same listing gives the same key.
    from training.fileio import write_bytes_atomic

    nested = tmp_path / "regions" / "part"
    nested.mkdir(parents=True)
    write_bytes_atomic(nested / "scene_0.npz", b"12345")
    items = tmp_path / "items.item"
    items.write_text(
        "#file onset offset #phone prev-phone next-phone speaker\na 0.0 0.1 p s s s1\n"
    )

    def key() -> str:
        return make_spec("abx", {"items": items, "wavs": tmp_path / "regions"}).key

    first = key()
    assert key() == first
    write_bytes_atomic(nested / "scene_0.npz", b"123456")  # another size, one folder down
    assert key() != first


def norm_on(model, layer: int, *, calls: str, items: str) -> float:
    """layer_norm, with an input file as its option (as the ABX probe's items)."""
    return layer_norm(model, layer, calls=calls)


def test_a_copied_run_reuses_its_grids(tmp_path: Path) -> None:
    run = make_run(tmp_path / "a" / "run")
    items = tmp_path / "a" / "items.txt"
    items.write_text("the same\n")
    calls = tmp_path / "calls.txt"
    first = grid(run, norm_on, calls=str(calls), items=str(items), progress=False)
    computed = count(calls)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    shutil.rmtree(tmp_path / "a")  # the origin is gone: the copy reads only itself
    again = grid(tmp_path / "b" / "run", norm_on, calls=str(calls),
                 items=str(tmp_path / "b" / "items.txt"), progress=False)  # fmt: skip
    assert count(calls) == computed
    assert again.values.tolist() == first.values.tolist()


def test_reproduction_json_stores_paths_relative_to_its_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    settings = {
        "corpus": str(out / "corpus"),
        "runs": {"VGS": {"path": str(out / "runs" / "VGS"), "base": None, "switch": None}},
        "abx": {"read, within speaker": {"probe": "abx", "items": str(out / "abx" / "read.item"),
                                         "wavs": "/elsewhere/wavs", "speaker": "within"}},
    }  # fmt: skip
    stored = store_paths(settings, out)
    assert stored["corpus"] == "corpus" and stored["runs"]["VGS"]["path"] == "runs/VGS"
    assert stored["abx"]["read, within speaker"]["items"] == "abx/read.item"
    assert stored["abx"]["read, within speaker"]["wavs"] == "/elsewhere/wavs"  # outside: absolute
    moved = tmp_path / "moved"
    moved.mkdir()
    (moved / "reproduction.json").write_text(json.dumps(stored))
    read = reproduction_settings(moved)
    assert read["corpus"] == str(moved / "corpus")
    assert read["runs"]["VGS"]["path"] == str(moved / "runs" / "VGS")
    assert read["abx"]["read, within speaker"]["items"] == str(moved / "abx" / "read.item")
    (moved / "reproduction.json").write_text(json.dumps(settings))  # an older, absolute file
    assert reproduction_settings(moved)["corpus"] == str(out / "corpus")


def test_the_report_flags_best_layer_0_and_quotes_the_papers_tables() -> None:
    import pandas as pd

    from analysis.paper.claims import CLAIMS
    from analysis.paper.report import PAPER_TABLES, _layer0_note

    table = pd.DataFrame(
        {"read, within speaker": [3.0, 4.0], "read, within speaker layer": [0, 2]},
        index=["W2V2", "VGS"],
    )
    (note,) = _layer0_note(table)
    assert "W2V2 (read, within speaker)" in note and "VGS " not in note
    assert "| VGS+ | 29.0 / 70.1 | 40.1 / 81.8 | 5.09 (8) | 6.81 (8) |" in PAPER_TABLES
    claim1 = next(c for c in CLAIMS if c.number == 1)
    assert claim1.worse == "VGS+" and "29.0/70.1" in claim1.paper and "28.4" not in claim1.paper
