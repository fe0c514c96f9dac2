"""report.md, its figures and tables from a hand-made Study: every file is written and the claims
are judged on the numbers given."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from PIL import Image

from analysis.claims import claims_markdown
from analysis.report import FIGURES, write_report
from analysis.study import RunSpec, Study

BASES = ["W2V2", "VGS", "VGS+"]
VARIANTS = ["(W2V2,VGS)", "(VGS,W2V2)", "(VGS+,W2V2)"]
EPOCHS = list(range(1, 8))
SWITCH = 2


def hand_made_grid(best: float, name: str) -> xr.DataArray:
    """An (epoch, layer) ABX grid whose final best layer is 3 with error `best`."""
    layers = np.arange(6)
    values = (
        best + 0.02 * np.abs(layers - 3)[None, :] + 0.01 * (EPOCHS[-1] - np.array(EPOCHS))[:, None]
    )
    return xr.DataArray(
        values,
        dims=("epoch", "layer"),
        coords={"epoch": EPOCHS, "layer": layers},
        attrs={"run": name},
    )


def hand_made_metrics(name: str) -> pd.DataFrame:
    stage = [0 if e <= SWITCH or name in BASES else 1 for e in EPOCHS]
    recall = [0.1 * e for e in EPOCHS]
    if name == "(VGS,W2V2)":  # collapses after the switch
        recall = [r if e <= SWITCH else 0.01 for r, e in zip(recall, EPOCHS, strict=True)]
    return pd.DataFrame(
        {
            "epoch": EPOCHS,
            "stage": stage,
            "loss_av": [3.0 / e for e in EPOCHS],
            "loss_aud": [5.0 - 0.3 * e for e in EPOCHS],
            "speech_to_image_r1": recall,
        }
    )


def recall(mean: float) -> dict[str, float]:
    keys = [
        "speech_to_image_r1",
        "speech_to_image_r10",
        "image_to_speech_r1",
        "image_to_speech_r10",
    ]
    return {k: mean for k in keys}


@pytest.fixture(scope="module")
def study() -> Study:
    runs = {name: RunSpec(name, Path(name)) for name in BASES}
    runs.update(
        {name: RunSpec(name, Path(name), base=Path("base"), switch=SWITCH) for name in VARIANTS}
    )
    study = Study(runs=runs)
    # Claim 1 holds ((W2V2,VGS) > VGS+), claim 2 holds ((VGS+,W2V2) > (VGS,W2V2)),
    # claim 3 does not (VGS's ABX above W2V2's).
    means = {
        "W2V2": 0.01,
        "VGS": 0.3,
        "VGS+": 0.2,
        "(W2V2,VGS)": 0.4,
        "(VGS,W2V2)": 0.01,
        "(VGS+,W2V2)": 0.1,
    }
    best = {
        "W2V2": 0.10,
        "VGS": 0.20,
        "VGS+": 0.15,
        "(W2V2,VGS)": 0.12,
        "(VGS,W2V2)": 0.3,
        "(VGS+,W2V2)": 0.2,
    }
    for name in runs:
        study.metrics[name] = hand_made_metrics(name)
        study.recall[name] = recall(means[name])
        for condition in (
            "read, within speaker",
            "read, across speaker",
            "captions, within speaker",
        ):
            study.abx.setdefault(condition, {})[name] = hand_made_grid(best[name], name)
    study.drift["(VGS,W2V2)"] = hand_made_grid(0.5, "(VGS,W2V2)")
    study.similarity["VGS vs W2V2"] = hand_made_grid(0.7, "VGS")
    return study


@pytest.fixture(scope="module")
def written(study: Study, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report of `study`, written once for the module (figures take seconds)."""
    out = tmp_path_factory.mktemp("report")
    write_report(study, out)
    return out


def test_every_figure_and_table_is_written(written: Path) -> None:
    tmp_path = written
    expected = [*FIGURES, "heatmap_read_within_speaker.png", "heatmap_captions_within_speaker.png"]
    for name in [*expected, "drift.png", "sharing.png"]:
        with Image.open(tmp_path / name) as image:
            assert image.size[0] > 200 and image.size[1] > 200, name
    for table in ("table1_recall", "table2_best_layer_abx", "forgetting", "sharing"):
        for suffix in (".csv", ".md"):
            assert (tmp_path / "tables" / f"{table}{suffix}").stat().st_size > 0
    text = (written / "report.md").read_text()
    for name in expected:
        assert f"]({name})" in text  # the report shows each figure


def test_table2_names_the_best_layer(written: Path) -> None:
    table = pd.read_csv(written / "tables" / "table2_best_layer_abx.csv", index_col="model")
    assert table.loc["VGS", "read, within speaker"] == "20.00 (3)"


def test_forgetting_rows_only_for_runs_with_a_switch(written: Path) -> None:
    table = pd.read_csv(written / "tables" / "forgetting.csv", index_col=["run", "metric"])
    assert set(table.index.get_level_values("run")) == set(VARIANTS)
    collapse = table.loc[("(VGS,W2V2)", "speech_to_image_r1")]
    assert collapse["at_switch"] == pytest.approx(0.2) and collapse[
        "largest_drop"
    ] == pytest.approx(0.19)


def test_claims_are_judged_on_the_measured_numbers(written: Path) -> None:
    text = (written / "report.md").read_text()
    claims = text.split("### ")[1:4]
    assert "**holds here**" in claims[0] and "(W2V2,VGS) 40.0" in claims[0]
    assert "**holds here**" in claims[1] and "20.0 at the switch" in claims[1]
    assert "**does not hold here**" in claims[2] and "VGS 20.00 (3)" in claims[2]


def test_claim_without_its_runs_says_not_measured(study: Study) -> None:
    runs = {name: spec for name, spec in study.runs.items() if name != "(VGS+,W2V2)"}
    text = claims_markdown(dataclasses.replace(study, runs=runs))
    assert "**Not measured**: this study did not train (VGS+,W2V2)" in text


def test_a_tie_is_no_verdict(study: Study) -> None:
    tied = dataclasses.replace(study, recall={**study.recall, "VGS+": study.recall["(W2V2,VGS)"]})
    assert "**is undecided here (a tie)**" in claims_markdown(tied).split("### ")[1]
