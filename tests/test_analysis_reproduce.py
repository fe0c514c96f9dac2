"""`sslvgs reproduce OUT --quick`: every figure and table of the report exists, the claims are judged,
and a second run is a no-op (resumable). The output is shared with tests/test_notebook.py through
the session fixture `quick_reproduction` (tests/conftest.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from analysis.paper.report import FIGURES
from analysis.paper.reproduction import PLANS, run_dir_name, variant_name

pytestmark = pytest.mark.slow

QUICK = PLANS["quick"]
RUN_NAMES = ["W2V2", "VGS", "VGS+", *(variant_name(a, b) for a, b in QUICK.variants)]
CONDITIONS = ["within speaker", "across speaker", "across context"]
TABLES = ["table1_recall", "table2_best_layer_abx", "claims", "forgetting", "sharing"]
VERDICTS = ["**holds**", "**contradicted**", "**undecided at this size**"]


def test_every_figure_exists_and_is_an_image(quick_reproduction: Path) -> None:
    heatmaps = [
        f"heatmap_{s}_{c.replace(' ', '_')}.png" for s in QUICK.abx_sets for c in CONDITIONS
    ]
    for name in [*FIGURES, *heatmaps, "drift.png", "sharing.png"]:
        with Image.open(quick_reproduction / name) as image:
            assert image.format == "PNG" and min(image.size) > 200, name


def test_every_table_exists_and_is_filled(quick_reproduction: Path) -> None:
    for name in TABLES:
        assert (quick_reproduction / "tables" / f"{name}.md").read_text().count("\n|") >= 2, name
    recall = pd.read_csv(quick_reproduction / "tables" / "table1_recall.csv", index_col="model")
    assert list(recall.index) == RUN_NAMES
    assert recall.notna().all().all() and ((recall >= 0) & (recall <= 100)).all().all()
    for column in [c for c in recall.columns if not c.endswith((" low", " high"))]:
        assert (recall[f"{column} low"] <= recall[column]).all()
        assert (recall[column] <= recall[f"{column} high"]).all()
    abx = pd.read_csv(
        quick_reproduction / "tables" / "table2_best_layer_abx.csv", index_col="model"
    )
    conditions = [f"{s}, {c}" for s in QUICK.abx_sets for c in CONDITIONS]
    assert list(abx.index) == RUN_NAMES
    for condition in conditions:
        assert abx[condition].between(0, 100).all() and (abx[f"{condition} layer"] >= 0).all()
    for condition in ("read, within speaker", "read, across speaker"):  # paired conditions
        low, high = abx[f"{condition} low"], abx[f"{condition} high"]
        assert (low <= abx[condition] + 1e-9).all() and (abx[condition] <= high + 1e-9).all()
    forgetting = pd.read_csv(quick_reproduction / "tables" / "forgetting.csv")
    assert set(forgetting["run"]) == {variant_name(a, b) for a, b in QUICK.variants}


def test_report_decides_each_claim_by_a_paired_interval(quick_reproduction: Path) -> None:
    report = (quick_reproduction / "report.md").read_text()
    claims = report.split("### ")[1:4]
    assert len(claims) == 3
    for claim in claims:
        claim = claim.split("\n## ")[0]
        assert "Paper" in claim and "Here" in claim and "interval [" in claim
        decided = claim.split("Decided")[1].split("\n")[0]  # the full set's, if it was scored
        assert sum(verdict in decided for verdict in VERDICTS) == 1, claim
    for figure in FIGURES:
        assert f"({figure})" in report
    table = pd.read_csv(quick_reproduction / "tables" / "claims.csv", index_col="claim")
    assert set(table["verdict"]) <= {"holds", "contradicted", "undecided at this size"}
    assert (table["half_width"] > 0).all() and (table["low"] <= table["high"]).all()
    # The ABX grids probe 4 files per speaker: claim 3 is decided on the full read set as well,
    # with intervals over speakers and their files, and says whether the two verdicts agree.
    abx = claims[2]
    assert "Decided on the full set:" in abx and "On the subset:" in abx
    assert re.search(r"over \d+ speakers and the files within them", abx)
    assert ("verdicts agree: both" in abx) != ("verdicts do not agree" in abx)
    assert f"**{table.loc[3, 'subset_verdict']}**" in VERDICTS


def test_test_recall_is_ranked_in_folds_and_the_report_says_so(quick_reproduction: Path) -> None:
    """The quick plan's 8 test images in 2 folds of 4 (the default plan: 1000 in 5 of 200)."""
    report = (quick_reproduction / "report.md").read_text()
    assert "8 images, 40 captions, ranked in 2 folds of about 4 images" in report
    assert "paired bootstrap over 8 images" in report
    record = json.loads(
        (quick_reproduction / "runs" / "vgs" / "analysis" / "recall-test.json").read_text()
    )
    assert record["folds"] == 2
    ranks = record["record"]["ranks"]
    # a caption ranks only its fold's 4 images, an image only its fold's 20 captions
    assert max(ranks["speech"]) <= 3 and max(ranks["image"]) <= 19


def test_step_times_say_which_session_measured_them(quick_reproduction: Path) -> None:
    timings = json.loads((quick_reproduction / "timings.json").read_text())
    first = timings["sessions"][0]
    assert first["started"].endswith("UTC") and "train VGS" in first["steps"]
    assert "session 1" in (quick_reproduction / "report.md").read_text()


def test_settings_name_every_run_and_its_probed_epochs(quick_reproduction: Path) -> None:
    settings = json.loads((quick_reproduction / "reproduction.json").read_text())
    assert list(settings["runs"]) == RUN_NAMES
    total = QUICK.stage_a + QUICK.stage_b
    for name, run in settings["runs"].items():
        assert Path(run["path"]).name == run_dir_name(name)
        assert run["probed_epochs"][-1] == total
    variant = settings["runs"][variant_name(*QUICK.variants[0])]
    assert variant["switch"] == QUICK.stage_a and variant["probed_epochs"][0] == QUICK.stage_a + 1


def test_second_run_trains_and_probes_nothing(quick_reproduction: Path) -> None:
    from analysis.cli import main

    watched = sorted(quick_reproduction.glob("runs/*/checkpoints/*.pt"))
    watched += sorted(quick_reproduction.glob("runs/*/analysis/*"))
    before = {path: path.stat().st_mtime_ns for path in watched}
    assert main(["reproduce", str(quick_reproduction), "--quick", "--no-progress"]) == 0
    assert {path: path.stat().st_mtime_ns for path in watched} == before
    sessions = json.loads((quick_reproduction / "timings.json").read_text())["sessions"]
    assert len(sessions) >= 2 and "train VGS" not in sessions[-1]["steps"]  # nothing trained
    assert "(this one)" in (quick_reproduction / "report.md").read_text()
    assert sorted(quick_reproduction.glob("runs/*/checkpoints/*.pt")) == sorted(
        p for p in watched if p.suffix == ".pt"
    )


def test_grid_command_reads_the_reproduction_cache(
    quick_reproduction: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from analysis import reproduction_settings
    from analysis.cli import main
    from analysis.gridding.driver import grid

    settings = reproduction_settings(quick_reproduction)  # paths resolved against the folder
    options = settings["abx"]["read, across speaker"]
    run = settings["runs"]["VGS"]
    epochs = ",".join(str(e) for e in run["probed_epochs"])
    caches = sorted(Path(run["path"]).glob("analysis/grid-*.nc"))
    before = [path.stat().st_mtime_ns for path in caches]
    out = tmp_path / "grid.csv"
    argv = ["grid", run["path"], "--probe", "abx", "--items", options["items"], "--wavs"]
    argv += [options["wavs"], "--speaker", "across", "--context", options["context"]]
    argv += ["--epochs", epochs, "--no-progress"]
    assert main([*argv, "--out", str(out)]) == 0
    assert [path.stat().st_mtime_ns for path in caches] == before  # read from the cache
    # The CSV is long (one row per epoch and layer, interval columns when there are intervals).
    table = pd.read_csv(out)
    value = next(c for c in table.columns if c not in ("epoch", "layer", "low", "high"))
    printed = table.pivot(index="epoch", columns="layer", values=value)
    expected = grid(run["path"], epochs=run["probed_epochs"], progress=False, **options)
    assert printed.to_numpy() == pytest.approx(expected.to_numpy())
    assert "across" in capsys.readouterr().out


def test_seeds_train_new_runs_beside_seed_0(quick_reproduction: Path, tmp_path: Path) -> None:
    """--seeds 2 on a finished single-seed reproduction (a copy) trains seed 1 only, in
    runs/seed-1/<name>, and reports the mean and between-seed spread of every model."""
    import shutil

    from analysis.cli import main

    out = tmp_path / "out"
    shutil.copytree(quick_reproduction, out)
    seed0 = sorted(out.glob("runs/*/checkpoints/*.pt"))
    before = {path: path.stat().st_mtime_ns for path in seed0}
    assert main(["reproduce", str(out), "--quick", "--seeds", "2", "--no-progress"]) == 0
    assert {path: path.stat().st_mtime_ns for path in seed0} == before
    from analysis import reproduction_settings

    settings = reproduction_settings(out)  # paths resolved against the copy
    seeded = settings["runs"]["VGS seed-1"]
    assert Path(seeded["path"]) == (out / "runs" / "seed-1" / "vgs").resolve()
    assert seeded["seed"] == 1 and seeded["model"] == "VGS"
    config = json.loads((Path(seeded["path"]) / "config.json").read_text())
    assert config["train"]["seed"] == 1
    summary = pd.read_csv(out / "tables" / "table1_recall_seeds.csv", index_col="model")
    assert list(summary.index) == RUN_NAMES and (summary["seeds"] == 2).all()
    assert (summary["speech→image R@1 seed sd"] >= 0).all()
    assert "mean of 2 seeds" in (out / "report.md").read_text()
