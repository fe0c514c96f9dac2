"""Caches you can see: `probes.list_caches` / `probes.clear_caches` and `sslvgs cache list|clear`,
on real caches (an extraction, a grid) of a copy of the session's tiny run; `--version`."""

from __future__ import annotations

import shutil
from importlib.metadata import version
from pathlib import Path

import pytest

from analysis.cli import main

COLUMNS = ["path", "kind", "model", "source", "layers", "size_bytes", "complete"]


def _constant(model, layer: int) -> float:
    return float(layer)


@pytest.fixture
def cached_run(tiny_run: Path, small_corpus: Path, tmp_path: Path) -> Path:
    """A copy of the tiny run with one activation store (layers 0 and 2 of three wavs of its last
    checkpoint) and one grid (a callable probe, every epoch, layers 0 and 1) cached beside it."""
    import analysis
    import probes

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("probes", "analysis"))
    wavs = sorted((small_corpus / "abx" / "read" / "wavs").glob("*.wav"))[:3]
    probes.extract(run, wavs, layers=[0, 2], progress=False)
    analysis.grid(run, _constant, layers=[0, 1], progress=False)
    return run


def test_list_names_what_is_stored_for_which_model_and_source(cached_run: Path) -> None:
    import probes

    table = probes.list_caches(cached_run)
    assert list(table.columns) == COLUMNS
    assert sorted(table.kind) == ["activations", "grids"]
    store = table[table.kind == "activations"].iloc[0]
    assert Path(store.path).parent == cached_run / "probes" / "activations"
    assert store.layers == [0, 2] and bool(store.complete)
    assert store.source == "3 audio files" and store.model  # what was extracted, from which model
    assert store.size_bytes == sum(
        f.stat().st_size for f in Path(store.path).rglob("*") if f.is_file()
    )
    grid = table[table.kind == "grids"].iloc[0]
    assert Path(grid.path).parent == cached_run / "analysis"
    assert grid.model == str(cached_run) and grid.layers == [0, 1]
    assert "_constant" in grid.source
    assert list(probes.list_caches(cached_run, kind="grids").kind) == ["grids"]


def test_clear_by_kind_then_all(cached_run: Path) -> None:
    import probes

    removed = probes.clear_caches(cached_run, kind="grids")
    assert list(removed.kind) == ["grids"] and not Path(removed.path[0]).exists()
    assert list(probes.list_caches(cached_run).kind) == ["activations"]
    removed = probes.clear_caches(cached_run)
    assert list(removed.kind) == ["activations"]
    assert probes.list_caches(cached_run).empty
    assert (cached_run / "checkpoints").is_dir() and (cached_run / "config.json").is_file()


def test_clear_leaves_an_entry_whose_writer_holds_the_lock(cached_run: Path) -> None:
    import probes
    from training.fileio import exclusive

    store = Path(probes.list_caches(cached_run, kind="activations").path[0])
    with exclusive(store, what="the activation store"):
        assert probes.clear_caches(cached_run, kind="activations").empty
    assert store.is_dir()


def test_user_cache_lists_stores_and_never_touches_other_folders(
    tiny_run: Path, small_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import probes
    import training

    monkeypatch.setenv("SSLVGS_CACHE", str(tmp_path / "cache"))
    other = tmp_path / "cache" / "venv-0123"  # the Makefile keeps its environments here
    other.mkdir(parents=True)
    # A model built in memory has no run: its stores go to the user cache.
    model = training.SSLVGS(training.load_model(tiny_run).cfg).eval()
    wavs = sorted((small_corpus / "abx" / "read" / "wavs").glob("*.wav"))[:2]
    probes.extract(model, wavs, layers=[1], progress=False)
    table = probes.list_caches()
    assert list(table.kind) == ["activations"] and table.layers[0] == [1]
    assert Path(table.path[0]).parent == tmp_path / "cache" / "activations"
    assert len(probes.clear_caches()) == 1 and probes.list_caches().empty
    assert other.is_dir()


def test_bad_arguments_are_one_clear_error(tmp_path: Path) -> None:
    import probes

    with pytest.raises(FileNotFoundError, match="not-a-run: not a run directory"):
        probes.list_caches(tmp_path / "not-a-run")
    with pytest.raises(ValueError, match="kind must be one of 'activations', 'grids'"):
        probes.list_caches(kind="stores")


def test_cache_command(cached_run: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["cache", "list", str(cached_run)]) == 0
    out = capsys.readouterr().out
    assert "activations" in out and "grids" in out and "2 entries" in out
    assert main(["cache", "clear", str(cached_run), "--kind", "activations"]) == 0
    assert "1 entries" in capsys.readouterr().out
    assert main(["cache", "list", str(cached_run), "--kind", "activations"]) == 0
    assert "nothing cached" in capsys.readouterr().out
    # Options before the runs, and before the action, read the same way.
    assert main(["cache", "list", "--kind", "grids", str(cached_run)]) == 0
    assert "1 entries" in capsys.readouterr().out
    assert main(["cache", "--kind", "grids", "clear", str(cached_run)]) == 0
    assert "1 entries" in capsys.readouterr().out
    assert main(["cache", "list", str(cached_run)]) == 0
    assert "nothing cached" in capsys.readouterr().out


def test_version_everywhere(capsys: pytest.CaptureFixture) -> None:
    import analysis
    import probes
    import training

    expected = version("sslvgs")
    assert training.__version__ == probes.__version__ == analysis.__version__ == expected
    assert "__version__" in dir(probes)
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out == f"sslvgs {expected}\n"


def test_every_command_takes_no_progress_and_the_old_quiet() -> None:
    from analysis.cli import build_parser

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # name -> subparser
    lacking = [name for name, sub in commands.items() if "--no-progress" not in sub.format_help()]
    assert lacking == ["cache"]  # listing and deleting files has nothing to show progress of
    for flag in ("--no-progress", "--quiet"):
        args = parser.parse_args(["extract", "RUN", "SRC", "--out", "x.zarr", flag])
        assert args.no_progress is True
    assert "--quiet" not in commands["extract"].format_help()  # a hidden alias
