"""`sslvgs grid`, `sslvgs report`, `sslvgs reproduce`: arguments and errors (the runs themselves are
tested in test_analysis_reproduce.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analysis.cli import main
from analysis.paper.report import _run_spec


def test_commands_are_registered(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("grid", "report", "reproduce"):
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0
        assert f"usage: sslvgs {command}" in capsys.readouterr().out


def test_grid_of_a_missing_run_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    items = tmp_path / "items.item"
    items.write_text("#file onset offset #phone prev-phone next-phone speaker\n")
    assert main(["grid", str(tmp_path / "nope"), "--items", str(items), "--no-progress"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "sslvgs grid: error:" in error and "nope" in error


def test_abx_grid_needs_items(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["grid", str(tmp_path), "--probe", "abx"]) == 2
    assert "needs --items" in capsys.readouterr().err


def test_reproduce_rejects_bad_stage_epochs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["reproduce", str(tmp_path / "out"), "--stage-epochs", "20"]) == 2
    assert "--stage-epochs" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_report_stitches_a_run_started_from_another(tmp_path: Path) -> None:
    base, variant = tmp_path / "vgs", tmp_path / "vgs-then-w2v2"
    for run, init in (
        (base, None),
        (variant, {"checkpoint": str(base / "checkpoints" / "epoch_0004.pt"), "epoch": 4}),
    ):
        run.mkdir()
        (run / "config.json").write_text(json.dumps({"corpus": "c", "init_from": init}))
    assert _run_spec(base).base is None
    spec = _run_spec(variant)
    assert (spec.name, spec.base, spec.switch) == ("vgs-then-w2v2", base, 4)


def test_reproduce_takes_several_region_files_like_train_and_recall():
    """LXMERT ships train2014 and val2014 TSVs: `reproduce --regions` takes both, as `train` does."""
    from analysis.cli import build_parser

    parser = build_parser()
    for command in (["reproduce", "out"], ["train", "corpus", "run"], ["recall", "run"]):
        args = parser.parse_args([*command, "--regions", "train2014.tsv", "val2014.tsv"])
        assert args.regions == ["train2014.tsv", "val2014.tsv"], command


def test_workers_are_single_threaded_processes_that_stop_with_the_client() -> None:
    from analysis.cli import _client

    assert _client(0) is None
    client = _client(2)
    cluster = client.cluster
    try:
        client.wait_for_workers(2, timeout=120)
        workers = client.scheduler_info()["workers"].values()
        assert sorted(w["nthreads"] for w in workers) == [1, 1]
    finally:
        client.close()
    assert cluster.status.name == "closed" and not cluster.workers  # no worker outlives the grid
