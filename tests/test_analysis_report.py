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

from analysis.paper.claims import claims_markdown, claims_table, decide
from analysis.paper.evidence import Ranks
from analysis.paper.report import FIGURES, write_report
from analysis.paper.study import RunSpec, Study
from probes.abx_engine import AbxResult, zerospeech_condition
from probes.abx_engine.hierarchical import FileCounts

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


def planted_ranks(hit_rate: float, seed: int, images: int = 40, captions: int = 5) -> Ranks:
    """Test ranks whose queries find their answer first with probability `hit_rate`, else at rank
    10 or later (a miss at R@1 and R@10)."""
    rng = np.random.default_rng(seed)
    owner = np.repeat(np.arange(images), captions)

    def ranks(n: int) -> np.ndarray:
        return np.where(rng.random(n) < hit_rate, 0, rng.integers(10, images, n))

    return Ranks(ranks(len(owner)), ranks(images), owner)


def planted_cells(error: float, speaker: str, speakers: int = 8, files: bool = False) -> AbxResult:
    """Per-cell ABX results around `error` (the same cells for every model, noise fixed per cell);
    `files`: each cell's 2 X items from 2 files of their speaker (pieces of 4 triplets each)."""
    names = [f"s{i}" for i in range(speakers)]
    rows = [(a, b, "c", s) for a, b in [("a", "b"), ("b", "a"), ("a", "c")] for s in names]
    cells = pd.DataFrame(rows, columns=["phone", "phone_b", "context", "speaker"])
    cells = cells.assign(n_a=2, n_b=2, n_x=2, n_triplets=8)
    noise = np.random.default_rng(0).uniform(-0.03, 0.03, len(cells))
    cells["error"] = np.clip(error + noise, 0, 1)
    cells["correct2"] = np.round((1 - cells["error"]) * 16).astype(np.int64)
    counts = None
    if files:  # each file's half of the triplets with the same error: correct2 per file
        halves = np.round((1 - cells["error"].to_numpy()) * 8).astype(np.int64)
        cells["correct2"] = 2 * halves
        cells["error"] = 1 - cells["correct2"] / 16
        owner = np.array([int(s[1:]) for s in cells["speaker"]])
        counts = FileCounts(
            np.repeat(np.arange(len(cells)), 2), (2 * owner[:, None] + [0, 1]).reshape(-1),
            np.repeat(halves, 2), np.full(2 * len(cells), 4),
            np.array([f"{s}f{k}" for s in names for k in (0, 1)], dtype=object),
            np.array([s for s in names for _ in (0, 1)], dtype=object),
        )  # fmt: skip
    return AbxResult(cells, zerospeech_condition(speaker, "within"), files=counts)


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
    for seed, name in enumerate(runs):
        study.metrics[name] = hand_made_metrics(name)
        study.recall[name] = recall(means[name])
        study.recall_intervals[name] = {
            k: (v - 0.05, v + 0.05) for k, v in recall(means[name]).items()
        }
        study.ranks[name] = planted_ranks(means[name], seed)
        for speaker in ("within", "across"):
            cells = planted_cells(best[name], speaker)
            study.best_cells.setdefault(f"read, {speaker} speaker", {})[name] = cells
        for condition in (
            "read, within speaker",
            "read, across speaker",
            "captions, within speaker",
        ):
            study.abx.setdefault(condition, {})[name] = hand_made_grid(best[name], name)
    study.drift["(VGS,W2V2)"] = hand_made_grid(0.5, "(VGS,W2V2)")
    study.similarity["VGS vs W2V2"] = hand_made_grid(0.7, "VGS")
    study.material = {
        "test": {"split": "test", "images": 20, "captions": 100, "captions_per_image": [5] * 20},
        "validation": {"split": "val", "images": 4, "captions": 20, "captions_per_image": [5] * 4},
        "abx": {
            "read": {
                "file": "read.item", "items": 467, "files": 16, "speakers": 4,
                "files_per_speaker": (4, 4),
                "full": {"file": "items.item", "items": 2885, "files": 96, "speakers": 4,
                         "files_per_speaker": (24, 24)},
            }
        },
    }  # fmt: skip
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


def test_table2_names_the_best_layer_with_its_interval(written: Path) -> None:
    table = pd.read_csv(written / "tables" / "table2_best_layer_abx.csv", index_col="model")
    row = table.loc["VGS"]
    assert row["read, within speaker"] == pytest.approx(20.0)
    assert row["read, within speaker layer"] == 3
    assert row["read, within speaker low"] < 20.0 < row["read, within speaker high"]
    assert np.isnan(row["captions, within speaker low"])  # no per-cell results kept for it
    markdown = (written / "tables" / "table2_best_layer_abx.md").read_text()
    assert "| VGS | 20.00 [" in markdown and "] (3) |" in markdown


def test_table1_carries_the_image_bootstrap_interval(written: Path) -> None:
    table = pd.read_csv(written / "tables" / "table1_recall.csv", index_col="model")
    assert table.loc["VGS", "speech→image R@1"] == pytest.approx(30.0)
    assert table.loc["VGS", "speech→image R@1 low"] == pytest.approx(25.0)
    assert table.loc["VGS", "speech→image R@1 high"] == pytest.approx(35.0)
    assert "| VGS | 30.00 [25.00, 35.00] |" in (written / "tables" / "table1_recall.md").read_text()


def test_forgetting_rows_only_for_runs_with_a_switch(written: Path) -> None:
    table = pd.read_csv(written / "tables" / "forgetting.csv", index_col=["run", "metric"])
    assert set(table.index.get_level_values("run")) == set(VARIANTS)
    collapse = table.loc[("(VGS,W2V2)", "speech_to_image_r1")]
    assert collapse["at_switch"] == pytest.approx(20.0) and collapse[
        "largest_drop"
    ] == pytest.approx(19.0)  # percent, as the other tables


def test_claims_are_decided_by_their_paired_intervals(written: Path) -> None:
    text = (written / "report.md").read_text()
    claims = text.split("### ")[1:4]
    assert "**holds**" in claims[0] and "(W2V2,VGS) 40.0" in claims[0]
    assert "**holds**" in claims[1] and "20.0 at the switch" in claims[1]
    assert "**contradicted**" in claims[2] and "VGS 19.9 vs W2V2 9.9" in claims[2]
    for claim in claims:
        assert "interval [" in claim and (
            "smallest difference" in claim or "Every resample" in claim
        )
    table = pd.read_csv(written / "tables" / "claims.csv", index_col="claim")
    assert table["verdict"].tolist() == ["holds", "holds", "contradicted"]
    assert (table["low"] <= table["difference"]).all() and (
        table["difference"] <= table["high"]
    ).all()


def with_full_set(study: Study, vgs: float, w2v2: float) -> Study:
    """`study` with claim 3's models scored on the full read set too (errors `vgs`, `w2v2`)."""
    full = {
        f"read, {speaker} speaker": {
            "VGS": planted_cells(vgs, speaker, files=True),
            "W2V2": planted_cells(w2v2, speaker, files=True),
        }
        for speaker in ("within", "across")
    }
    return dataclasses.replace(study, full_cells=full)


def test_claim3_is_decided_on_the_full_set_and_says_whether_the_subset_agrees(study: Study):
    """The subset (VGS 20% against W2V2 10%: contradicted); on the full set VGS 5% against 10%
    (holds): they do not agree, and the report says so with both intervals; VGS 30% on the full
    set too: they agree."""
    disagree = with_full_set(study, vgs=0.05, w2v2=0.10)
    claim = decide(disagree, n_boot=200)[2]
    assert (claim.subset.verdict, claim.verdict, claim.sets_agree) == (
        "contradicted", "holds", False)  # fmt: skip
    assert claim.comparison.unit == "speakers and the files within them"
    text = claims_markdown(disagree, [claim]).split("### 3.")[1]
    assert "Decided on the full set: " in text and "On the subset: " in text
    assert text.count("95% interval [") == 6  # 2 conditions and their mean, on each set
    assert "**The subset's and the full set's verdicts do not agree**" in text
    assert "the subset's is **contradicted**, the full set's **holds**" in text
    assert "lies **outside** the subset's interval" in text
    assert "Per condition (seed 0) the verdicts differ on read, within speaker (subset" in text
    assert "full `read` set (4 speakers, 96 files, 2885 items)" in text
    assert "resamples the speakers and, within each drawn speaker, its files" in text
    agree = with_full_set(study, vgs=0.30, w2v2=0.10)
    claims = decide(agree, n_boot=200)
    assert claims[2].sets_agree is True
    text = claims_markdown(agree, claims).split("### 3.")[1]
    assert "The subset's and the full set's verdicts agree: both **contradicted**; the" in text
    assert "differ on" not in text  # each condition contradicted on both sets
    table = claims_table(claims)
    assert table.loc[3, "subset_verdict"] == "contradicted" and table.loc[3, "sets_agree"]
    assert table.loc[3, "subset_low"] <= table.loc[3, "subset_difference"]


def test_agreement_says_where_the_full_sets_difference_lies() -> None:
    """Both undecided, the full set's -1.0 inside the subset's [-3.0, +1.0]: they agree, inside."""
    from analysis.paper.claims import CLAIMS, Claim, agreement_text
    from analysis.paper.evidence import Comparison

    def comparison(difference: float, low: float, high: float) -> Comparison:
        return Comparison("best-layer ABX error, read, within speaker", "VGS", "W2V2", 0.1, 0.1,
                          difference, low, high, False, "speakers", 4)  # fmt: skip

    claim = Claim(CLAIMS[2], comparison(-0.01, -0.02, 0.005), subset=comparison(-0.02, -0.03, 0.01))
    text = agreement_text(claim)
    assert text.startswith("The subset's and the full set's verdicts agree: both **undecided")
    assert "-1.0 points, lies inside the subset's interval [-3.0, +1.0]." in text


def test_claim3_on_one_set_only_says_nothing_of_agreement(study: Study) -> None:
    claim = decide(study, n_boot=100)[2]
    assert claim.subset is None and claim.sets_agree is None
    text = claims_markdown(study, [claim])
    assert "agree" not in text and "Decided: " in text


def test_claim_without_its_runs_says_not_measured(study: Study) -> None:
    runs = {name: spec for name, spec in study.runs.items() if name != "(VGS+,W2V2)"}
    text = claims_markdown(dataclasses.replace(study, runs=runs))
    assert "**Not measured**: this study did not train (VGS+,W2V2)" in text


def test_two_identical_models_are_undecided(study: Study) -> None:
    same = {**study.ranks, "VGS+": study.ranks["(W2V2,VGS)"]}
    cells = {c: {**r, "W2V2": r["VGS"]} for c, r in study.best_cells.items()}
    tied = dataclasses.replace(study, ranks=same, best_cells=cells)
    claims = decide(tied, n_boot=200)
    assert claims[0].verdict == "undecided at this size" and claims[0].comparison.difference == 0
    assert claims[2].verdict == "undecided at this size"
    assert "**undecided at this size**" in claims_markdown(tied, claims).split("### ")[1]


@pytest.mark.slow
def test_several_seeds_give_mean_and_spread_beside_the_intervals(
    study: Study, tmp_path: Path
) -> None:
    """Seed 1 of every model (a second copy, its recall 5 points higher): per-model tables with the
    mean and the between-seed SD, and claims decided on the seed-averaged difference."""
    seeded = dataclasses.replace(
        study,
        runs={**study.runs},
        metrics={**study.metrics},
        abx={c: dict(g) for c, g in study.abx.items()},
        recall={**study.recall},
        recall_intervals={**study.recall_intervals},
        ranks={**study.ranks},
        best_cells={c: dict(r) for c, r in study.best_cells.items()},
        drift={},
        similarity={},
    )
    for index, (name, spec) in enumerate(study.runs.items()):
        other = f"{name} seed-1"
        seeded.runs[other] = dataclasses.replace(spec, name=other, model=name, seed=1)
        seeded.metrics[other] = study.metrics[name]
        for condition in study.abx:
            seeded.abx[condition][other] = study.abx[condition][name]
        seeded.recall[other] = {k: v + 0.05 for k, v in study.recall[name].items()}
        seeded.recall_intervals[other] = study.recall_intervals[name]
        seeded.ranks[other] = planted_ranks(study.recall[name]["speech_to_image_r1"], 50 + index)
        for condition, results in study.best_cells.items():
            seeded.best_cells[condition][other] = results[name]
    assert seeded.seeds("VGS") == {0: "VGS", 1: "VGS seed-1"}
    write_report(seeded, tmp_path)
    summary = pd.read_csv(tmp_path / "tables" / "table1_recall_seeds.csv", index_col="model")
    assert summary.loc["VGS", "seeds"] == 2
    assert summary.loc["VGS", "speech→image R@1"] == pytest.approx(32.5)
    assert summary.loc["VGS", "speech→image R@1 seed sd"] == pytest.approx(5 / np.sqrt(2))
    report = (tmp_path / "report.md").read_text()
    assert "## Tables I and II over seeds" in report
    claim = report.split("### ")[1]
    assert "mean of 2 seeds" in claim and "Per seed: seed 0:" in claim


def test_the_report_states_every_split_and_subset_with_its_size_and_chance(written: Path) -> None:
    text = (written / "report.md").read_text()
    data = text.split("## Data")[1].split("\n## ")[0]
    assert "**Test split** `test`" in data and "20 images, 100 captions" in data
    assert "chance R@1 5.0% speech→image / 5.0% image→speech" in data
    assert "**Validation split** `val`" in data and "4 images, 20 captions" in data
    assert "chance R@1 25.0% speech→image / 25.0% image→speech, R@10 100.0%" in data
    assert "4 speakers, 4 files per speaker (16 files), 467 items" in data
    assert "full set (4 speakers, 24 files per speaker, 96 files, 2885 items)" in data
    assert "50% error" in data
    assert "(20 images, 100 captions; chance R@1 5.0%" in text.split("## Table I")[1]
    claim2 = text.split("### 2.")[1].split("### 3.")[0]
    assert "on the validation split `val`, 4 images" in claim2
    assert "on the `read` ABX set: 4 speakers, 16 files, 467 items" in text.split("### 3.")[1]


def test_forgetting_is_in_percent_with_integer_epochs(written: Path) -> None:
    text = (written / "report.md").read_text().split("## Forgetting")[1]
    assert "validation split `val` (4 images, 20 captions" in text
    rows = [line for line in text.splitlines() if "speech_to_image_r1" in line]
    collapse = next(line for line in rows if line.startswith("| (VGS,W2V2)"))
    cells = [cell.strip() for cell in collapse.strip("|").split("|")]
    assert cells[2:5] == ["validation split `val`, %", "higher", "20.00"]
    worst, recover = cells[-2:]
    assert worst.isdigit() and (recover.isdigit() or recover == "–"), cells
    assert ".000" not in text


def test_chance_recall_both_ways() -> None:
    from analysis.paper.material import chance_recall

    assert chance_recall([5] * 20, 1) == pytest.approx(
        {"speech_to_image": 1 / 20, "image_to_speech": 5 / 100}
    )
    # R@10 image->speech: 1 - C(95, 10) / C(100, 10) that none of its 5 captions is in the top 10
    import math

    expected = 1 - math.comb(95, 10) / math.comb(100, 10)
    assert chance_recall([5] * 20, 10)["image_to_speech"] == pytest.approx(expected)
    assert chance_recall([5] * 4, 10)["speech_to_image"] == 1.0  # 10 of 4 images: always


def test_chance_recall_in_folds_is_one_folds_chance() -> None:
    from analysis.paper.material import chance_recall, split_text

    # 5 folds of 20 images: the chance of 20 images, not of 100
    assert chance_recall([5] * 100, 10, folds=5) == pytest.approx(chance_recall([5] * 20, 10))
    # unequal folds: each query weighs as recall weighs it (speech: per caption)
    counts = [1] * 3 + [4] * 2  # folds of 3 images (3 captions) and 2 images (8 captions)
    speech = (3 * min(1, 2 / 3) + 8 * min(1, 2 / 2)) / 11
    assert chance_recall(counts, 2, folds=2)["speech_to_image"] == pytest.approx(speech)
    text = split_text({"split": "test", "images": 1000, "captions": 5000,
                       "captions_per_image": [5] * 1000, "folds": 5})  # fmt: skip
    assert "5 folds of about 200 images" in text and "R@10 5.0% speech→image" in text


def test_material_of_a_corpus_names_its_splits_and_abx_subset(small_corpus: Path, tmp_path) -> None:
    from analysis.paper.material import item_material, split_material
    from analysis.paper.study import subset_items
    from training.run.directory import abx_item_file

    test = split_material(small_corpus, "test")
    assert test["images"] == len(test["captions_per_image"]) > 0
    assert test["captions"] == sum(test["captions_per_image"])
    full = abx_item_file("read", small_corpus)
    subset = subset_items(full, tmp_path / "read.item", 2)
    material = item_material(subset, full)
    assert material["files_per_speaker"] == (2, 2)
    assert material["files"] == 2 * material["speakers"]
    assert material["full"]["files"] > material["files"]
    assert "full" not in item_material(full, full)


def test_a_validation_split_at_chance_is_flagged() -> None:
    from analysis.paper.material import material_markdown

    one = {"split": "val", "images": 1, "captions": 5, "captions_per_image": [5]}
    text = material_markdown(None, one, {})
    assert "1 image, 5 captions" in text and "cannot show forgetting" in text
    many = {"split": "val", "images": 40, "captions": 200, "captions_per_image": [5] * 40}
    assert "cannot show forgetting" not in material_markdown(None, many, {})


@pytest.mark.parametrize(
    "low, high, precise",
    [(-0.019, 0.005, True), (-0.016, 0.014, True), (-0.03, 0.01, False), (0.005, 0.02, False)],
)
def test_an_undecided_claim_with_a_narrow_interval_says_smaller_than_1_5_points(low, high, precise):
    """Undecided with a half-width of at most 1.5 points: the report says the run could have seen
    any difference larger than that; a decided claim or a wider interval says nothing of the kind."""
    from analysis.paper.claims import comparison_text
    from analysis.paper.evidence import Comparison

    c = Comparison(measure="mean test recall", a="A", b="B", value_a=0.15, value_b=0.16,
                   difference=(low + high) / 2, low=low, high=high, higher_is_better=True,
                   unit="images", units=1000)  # fmt: skip
    text = comparison_text(c)
    assert ("smaller than 1.5 points" in text) is precise, text
    if precise:
        assert f"half-width of {100 * (high - low) / 2:.2f} points" in text
