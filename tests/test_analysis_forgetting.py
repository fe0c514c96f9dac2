"""Forgetting tables, read off hand-made metrics.jsonl files whose answers can be worked out by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from analysis.forgetting_metrics import forgetting, forgetting_table, higher_is_better
from analysis.runs import read_metrics, switch_epoch


def write_metrics(run: Path, rows: list[dict]) -> Path:
    run.mkdir(parents=True, exist_ok=True)
    (run / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return run


# A (VGS, W2V2)-like run: stage 1 (VGS) for epochs 1-4, stage 2 (W2V2) for 5-10. Recall climbs to 0.40
# at the switch, collapses to 0.05 at epoch 6, is back to 0.41 at epoch 9. loss_av rises from 2.0 to
# 5.0 (epoch 7) and never comes back. loss_aud only improves after the switch.
RECALL = [0.10, 0.20, 0.30, 0.40, 0.10, 0.05, 0.20, 0.35, 0.41, 0.39]
LOSS_AV = [4.0, 3.0, 2.5, 2.0, 3.0, 4.5, 5.0, 4.8, 4.0, 3.5]
LOSS_AUD = [6.0, 6.0, 6.0, 6.0, 5.0, 4.0, 3.0, 2.5, 2.0, 1.5]


@pytest.fixture
def switched_run(tmp_path: Path) -> Path:
    rows = [
        {
            "epoch": epoch,
            "stage": 0 if epoch <= 4 else 1,
            "alpha": 1.0 if epoch <= 4 else 0.0,
            "loss_av": LOSS_AV[epoch - 1],
            "loss_aud": LOSS_AUD[epoch - 1],
            "recall": {"speech_to_image_r1": RECALL[epoch - 1]},
            "loss": 0.5,  # the weighted loss changes meaning at the switch: not followed
            "lr": 1e-3,
            "seconds": 3.0,
        }
        for epoch in range(1, 11)
    ]
    return write_metrics(tmp_path / "vgs_w2v2", rows)


def test_switch_is_the_last_epoch_of_the_first_stage(switched_run: Path) -> None:
    assert switch_epoch(read_metrics(switched_run)) == 4


def test_nested_recall_is_flattened(switched_run: Path) -> None:
    assert read_metrics(switched_run)["recall_speech_to_image_r1"].tolist() == RECALL


def test_forgetting_table_by_hand(switched_run: Path) -> None:
    table = forgetting_table(switched_run)
    recall = table.loc["recall_speech_to_image_r1"]
    assert recall["higher_is_better"]
    assert recall["at_switch"] == pytest.approx(0.40)
    assert recall["final"] == pytest.approx(0.39)
    assert recall["largest_drop"] == pytest.approx(0.35)  # 0.40 -> 0.05
    assert recall["worst_epoch"] == 6
    assert recall["epochs_to_recover"] == 5  # back to >= 0.40 at epoch 9

    loss_av = table.loc["loss_av"]
    assert not loss_av["higher_is_better"]
    assert loss_av["largest_drop"] == pytest.approx(3.0)  # 2.0 -> 5.0: lower is better
    assert loss_av["worst_epoch"] == 7
    assert math.isnan(loss_av["epochs_to_recover"])  # never back to 2.0

    loss_aud = table.loc["loss_aud"]
    assert loss_aud["largest_drop"] == 0.0 and loss_aud["epochs_to_recover"] == 0
    assert math.isnan(loss_aud["worst_epoch"])
    assert set(table.index) == {"loss_av", "loss_aud", "recall_speech_to_image_r1"}


def test_best_layer_abx_joins_the_table(switched_run: Path) -> None:
    # Best layer (the minimum over layers) rises from 0.10 at the switch to 0.30 at epoch 5.
    best = np.array([0.30, 0.20, 0.15, 0.10, 0.30, 0.20, 0.12, 0.10, 0.09, 0.10])
    values = np.stack([best + 0.05, best, best + 0.20], axis=1)  # layer 1 is always the best
    grid = xr.DataArray(
        values, dims=("epoch", "layer"), coords={"epoch": range(1, 11), "layer": [0, 1, 2]}
    )
    row = forgetting_table(switched_run, {"abx": grid}).loc["best_layer_abx"]
    assert not row["higher_is_better"]
    assert row["largest_drop"] == pytest.approx(0.20)
    assert row["worst_epoch"] == 5
    assert row["epochs_to_recover"] == 4  # 0.10 again at epoch 8


def test_tolerance_counts_near_values_as_recovered() -> None:
    series = pd.Series([1.0, 0.5, 0.98], index=[3, 4, 5], name="r1")
    assert math.isnan(forgetting(series, 3, higher_is_better=True)["epochs_to_recover"])
    assert forgetting(series, 3, higher_is_better=True, tolerance=0.05)["epochs_to_recover"] == 2


def test_direction_from_the_name() -> None:
    assert higher_is_better("recall_image_to_speech_r10")
    assert not higher_is_better("loss_av") and not higher_is_better("best_layer_abx_within")


def test_single_stage_run_is_an_error(tmp_path: Path) -> None:
    run = write_metrics(
        tmp_path / "vgs", [{"epoch": e, "stage": 0, "loss_av": 1.0} for e in (1, 2)]
    )
    with pytest.raises(ValueError, match="single stage"):
        forgetting_table(run)


def test_bad_metrics_line_names_file_and_line(tmp_path: Path) -> None:
    run = tmp_path / "broken"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"epoch": 1}\nnot json\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl, line 2"):
        read_metrics(run)


def test_metric_without_value_at_switch_is_named(tmp_path: Path) -> None:
    series = pd.Series([1.0, 2.0], index=[1, 3], name="r1")
    with pytest.raises(ValueError, match="'r1' has no value at the switch epoch 2"):
        forgetting(series, 2, higher_is_better=True)
