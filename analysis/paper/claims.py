"""The paper's three claims, each decided by a paired interval on this study's test material.

Each claim says that one model beats another. Both are measured on the same test queries (claims 1
and 2: test recall, the same images resampled for both) or the same ABX cells (claim 3: the engine's
paired bootstrap over the speakers and the files within each drawn speaker), and the verdict reads
the difference's 95% interval (`analysis.paper.evidence`): **holds**, **contradicted** or **undecided
at this size**, with the smallest difference the run could have detected. With several seeds the
seed-averaged difference is decided, its interval widened by the between-seed spread, and each seed's
own verdict is listed. A claim whose runs were not trained (a --quick study has fewer variants) says
so instead. When the grids probed a subset of the ABX set and the study scored the corpus's full set
too (`Study.full_cells`), claim 3 is decided on the full set, and the subset's verdict is given beside
it with whether the two agree.

The claims as the paper states them (`ClaimSpec`, `CLAIMS`) and its numbers (`PAPER`) are in
claim_specs.py; they are imported here too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pandas as pd

from analysis.metric_names import METRICS, TABLE_RECALLS
from analysis.paper.claim_specs import CLAIMS, PAPER, ClaimSpec
from analysis.paper.evidence import (
    SPEAKERS_AND_FILES,
    VERDICTS,
    Comparison,
    combine_conditions,
    combine_seeds,
    paired_abx,
    paired_recall,
)
from analysis.paper.study import PAIRED_CONDITIONS, Study

__all__ = [
    "Claim",
    "CLAIMS",
    "PAPER",
    "decide",
    "claims_markdown",
    "claims_table",
    "agreement_text",
]


@dataclass
class Claim:
    """A claim as measured: the decided comparison (seed-averaged), each seed's, the parts it
    averages (claim 3: one per ABX condition, seed 0), or why it could not be measured.

    Claim 3 on a subset of the ABX set, with the full set scored too: `comparison`, `per_seed` and
    `parts` are the full set's, `subset` and `subset_parts` the subset's."""

    spec: ClaimSpec
    comparison: Comparison | None = None
    per_seed: list[Comparison] = field(default_factory=list)
    parts: list[Comparison] = field(default_factory=list)
    missing: str = ""
    subset: Comparison | None = None
    subset_parts: list[Comparison] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return self.comparison.verdict if self.comparison is not None else "not measured"

    @property
    def sets_agree(self) -> bool | None:
        """Whether the subset's verdict is the full set's (None: decided on one set only)."""
        if self.subset is None or self.comparison is None:
            return None
        return self.subset.verdict == self.comparison.verdict


def _recall_comparison(study: Study, a: str, b: str, n_boot: int) -> Comparison:
    return paired_recall(study.ranks[a], study.ranks[b], names=(a, b), n_boot=n_boot)


def _abx_parts(results: dict, a: str, b: str, n_boot: int) -> list[Comparison]:
    """One paired comparison per ABX condition of `results` (condition -> run -> AbxResult)."""
    parts = []
    for condition in PAIRED_CONDITIONS:
        cells = results.get(condition, {})
        if cells.get(a) is not None and cells.get(b) is not None:
            measure = f"best-layer ABX error, {condition}"
            parts.append(paired_abx(cells[a], cells[b], names=(a, b), measure=measure,
                                    n_boot=n_boot))  # fmt: skip
    return parts


def _decide_one(study: Study, spec: ClaimSpec, n_boot: int) -> Claim:
    claim = Claim(spec)
    better, worse = study.seeds(spec.better), study.seeds(spec.worse)
    absent = [m for m, seeds in ((spec.better, better), (spec.worse, worse)) if not seeds]
    if absent:
        claim.missing = f"this study did not train {', '.join(absent)}"
        return claim
    seeds = sorted(set(better) & set(worse))
    subset, full = [], []
    for seed in seeds:
        a, b = better[seed], worse[seed]
        if spec.measure == "recall":
            if a not in study.ranks or b not in study.ranks:
                claim.missing = "no test recall ranks"
                return claim
            claim.per_seed.append(_recall_comparison(study, a, b, n_boot))
            continue
        parts = _abx_parts(study.best_cells, a, b, n_boot)
        if not parts:
            claim.missing = "no ABX on the read set"
            return claim
        claim.subset_parts = claim.subset_parts or parts
        subset.append(combine_conditions(parts, _mean_measure(parts)))
        on_full = _abx_parts(study.full_cells, a, b, n_boot)
        if len(on_full) == len(parts):
            claim.parts = claim.parts or on_full
            full.append(combine_conditions(on_full, _mean_measure(on_full)))
    if spec.measure == "abx":
        if full and len(full) == len(subset):  # decided on the full set, the subset beside it
            claim.per_seed, claim.subset = full, combine_seeds(subset)
        else:
            claim.per_seed, claim.parts = subset, claim.subset_parts  # decided on the subset
            claim.subset_parts = []
    claim.comparison = combine_seeds(claim.per_seed)
    return claim


def _mean_measure(parts: Sequence[Comparison]) -> str:
    return "best-layer ABX error, mean of " + " and ".join(
        p.measure.split(", ", 1)[1] for p in parts
    )


def decide(study: Study, *, n_boot: int = 1000) -> list[Claim]:
    """The paper's three claims, each decided by its paired interval on `study`."""
    return [_decide_one(study, spec, n_boot) for spec in CLAIMS]


def _points(value: float) -> str:
    return f"{100 * value:.1f}" if math.isfinite(value) else "–"


# An undecided claim whose interval is at most this wide on each side (in points) is reported as
# precise: the models differ by less than the run could have seen, not by an unmeasured amount.
PRECISE_HALF_WIDTH = 1.5


def comparison_text(c: Comparison) -> str:
    """One sentence: values, the difference with its interval, the verdict, the detectable size."""
    direction = "higher" if c.higher_is_better else "lower"
    seeds = f" ({c.note})" if c.note else ""
    if c.half_width > 0:
        detectable = (
            f"The smallest difference this run could detect: about {100 * c.half_width:.1f} "
            "points (the interval's half-width)."
        )
        if c.verdict == VERDICTS[2] and 100 * c.half_width <= PRECISE_HALF_WIDTH:
            detectable += (
                f" Undecided with a half-width of {100 * c.half_width:.2f} points, smaller than "
                f"{PRECISE_HALF_WIDTH} points: whatever the two differ by, the run puts it within "
                f"[{100 * c.low:+.1f}, {100 * c.high:+.1f}] points ({100 * c.confidence:.0f}%)."
            )
    elif c.difference == 0:
        detectable = (
            "Every resample gives a difference of 0 (e.g. errors of 0 for both models): this "
            "material cannot tell the models apart."
        )
    else:
        detectable = "Every resample gives the same difference."
    return (
        f"{c.measure} ({direction} is better): {c.a} {_points(c.value_a)} vs {c.b} "
        f"{_points(c.value_b)}; difference {100 * c.difference:+.1f} points, "
        f"{100 * c.confidence:.0f}% interval [{100 * c.low:+.1f}, {100 * c.high:+.1f}] (paired "
        f"bootstrap over {c.units} {c.unit}{seeds}): **{c.verdict}**. {detectable}"
    )


def _recall_here(study: Study, name: str) -> str:
    values = study.recall.get(name, {})
    shown = "/".join(_points(values.get(k, math.nan)) for k in TABLE_RECALLS[:2])
    back = "/".join(_points(values.get(k, math.nan)) for k in TABLE_RECALLS[2:])
    return f"{name} {shown} speech→image, {back} image→speech"


def _validation_column(study: Study, name: str) -> str | None:
    """The logged recall to follow over epochs: speech->image R@1 if logged, else any recall."""
    columns = {c: METRICS.get(c) for c in study.metrics[name].columns}
    recalls = [c for c, m in columns.items() if m is not None and m.is_recall]
    return ("speech_to_image_r1" if "speech_to_image_r1" in recalls else None) or next(
        iter(recalls), None
    )


def _retained_text(study: Study, name: str) -> str:
    """ "logged speech→image R@1 20.0 at the switch, 11.4 at the end (57% kept)", if logged."""
    column, switch = _validation_column(study, name), study.switch(name)
    if column is None or switch is None:
        return ""
    table = study.metrics[name].set_index("epoch")[column].dropna()
    if switch not in table.index:
        return ""
    at_switch, final = float(table.loc[switch]), float(table.iloc[-1])
    kept = f" ({100 * final / at_switch:.0f}% kept)" if at_switch > 0 else ""
    validation = study.material.get("validation")
    split = (
        f"validation split `{validation['split']}`, {validation['images']} images"
        if validation
        else "validation split"
    )
    return (
        f"; logged {METRICS[column].title} on the {split}: {_points(at_switch)} at the switch, "
        f"{_points(final)} at the end{kept}"
    )


def _here(study: Study, claim: Claim) -> str:
    spec = claim.spec
    if spec.measure == "recall":
        names = [spec.better, spec.worse]
        lines = [f"- {_recall_here(study, n)} (test, final epoch){_retained_text(study, n)}"
                 for n in names]  # fmt: skip
        return "Here (seed 0; R@1/R@10, %):\n" + "\n".join(lines) + "\n\n"
    read = study.material.get("abx", {}).get("read")
    where = (
        f" on the `read` ABX set: {read['speakers']} speakers, {read['files']} files, "
        f"{read['items']} items"
        + (f" (a subset of the full set's {read['full']['files']} files)" if "full" in read else "")
        if read
        else ""
    )
    units = [p.unit == SPEAKERS_AND_FILES for p in [*claim.subset_parts, *claim.parts]]
    resampled = (
        ("Each interval" if all(units) else f'An interval "over ... {SPEAKERS_AND_FILES}"')
        + " resamples the speakers and, within each drawn speaker, its files (an X item counts "
        "as many times as its file is drawn).\n\n"
        if any(units)
        else ""
    )
    if claim.subset is None:
        lines = [f"- {comparison_text(part)}" for part in claim.parts]
        return f"{resampled}Here, per condition (seed 0){where}:\n" + "\n".join(lines) + "\n\n"
    subset = [f"- {comparison_text(part)}" for part in claim.subset_parts]
    full = [f"- {comparison_text(part)}" for part in claim.parts]
    return (
        f"{resampled}Here, per condition (seed 0){where}:\n" + "\n".join(subset)
        + f"\n\nOn the subset: {comparison_text(claim.subset)}\n\n"
        + f"On the corpus's full `read` set{_full_size(read)}, at the same layers (each model's "
        "best final layer on the subset), per condition (seed 0):\n" + "\n".join(full) + "\n\n"
    )  # fmt: skip


def _full_size(read: dict | None) -> str:
    full = (read or {}).get("full")
    if not full:
        return ""
    return f" ({full['speakers']} speakers, {full['files']} files, {full['items']} items)"


def agreement_text(claim: Claim) -> str:
    """Whether the subset's and the full set's verdicts agree, whether the full set's difference
    lies inside the subset's interval, and the conditions whose verdicts differ ("" if one set)."""
    if claim.sets_agree is None:
        return ""
    subset, full = claim.subset, claim.comparison
    if claim.sets_agree:
        text = f"The subset's and the full set's verdicts agree: both **{full.verdict}**"
    else:
        text = (
            f"**The subset's and the full set's verdicts do not agree**: the subset's is "
            f"**{subset.verdict}**, the full set's **{full.verdict}** (the verdict above: it rests "
            "on every file)"
        )
    inside = subset.low <= full.difference <= subset.high
    text += (
        f"; the full set's difference, {100 * full.difference:+.1f} points, lies "
        f"{'inside' if inside else '**outside**'} the subset's interval "
        f"[{100 * subset.low:+.1f}, {100 * subset.high:+.1f}]."
    )
    differ = [
        f"{s.measure.split(', ', 1)[-1]} (subset **{s.verdict}**, {100 * s.difference:+.1f} "
        f"[{100 * s.low:+.1f}, {100 * s.high:+.1f}]; full set **{f.verdict}**, "
        f"{100 * f.difference:+.1f} [{100 * f.low:+.1f}, {100 * f.high:+.1f}])"
        for s, f in zip(claim.subset_parts, claim.parts, strict=False)
        if s.verdict != f.verdict
    ]
    if differ:
        text += " Per condition (seed 0) the verdicts differ on " + "; ".join(differ) + "."
    return text + "\n"


def _claim_markdown(study: Study, claim: Claim) -> str:
    spec = claim.spec
    text = f"### {spec.number}. {spec.title}\n\nPaper {spec.paper}\n\n"
    if claim.comparison is None:
        return text + f"**Not measured**: {claim.missing}.\n"
    decided = "Decided on the full set: " if claim.subset is not None else "Decided: "
    text += _here(study, claim) + decided + comparison_text(claim.comparison) + "\n"
    if claim.subset is not None:
        text += "\n" + agreement_text(claim)
    if len(claim.per_seed) > 1:
        text += "\nPer seed: " + "; ".join(
            f"seed {i}: {100 * c.difference:+.1f} [{100 * c.low:+.1f}, {100 * c.high:+.1f}] "
            f"{c.verdict}"
            for i, c in enumerate(claim.per_seed)
        ) + ".\n"  # fmt: skip
    return text


def claims_markdown(study: Study, claims: Sequence[Claim] | None = None) -> str:
    """The section of the report that states the three claims with this study's paired intervals."""
    claims = decide(study) if claims is None else claims
    intro = (
        "Each claim compares two models on the same test material; the difference's interval is a "
        "paired bootstrap (the same resampled images, or speakers and their files, for both "
        "models). **holds**: the interval lies on the claim's side of 0; **contradicted**: on the "
        "other side; **undecided at this size**: it covers 0.\n"
    )
    return "\n".join(
        ["## The paper's three claims, measured here\n", intro]
        + [_claim_markdown(study, claim) for claim in claims]
    )


def claims_table(claims: Sequence[Claim], scale: Callable[[float], float] = lambda v: 100 * v):
    """One row per claim: the two models, their values, the difference and its interval (in points),
    the half-width, the number of seeds and the verdict."""
    rows = {}
    for claim in claims:
        c = claim.comparison
        row = {"better": claim.spec.better, "worse": claim.spec.worse, "verdict": claim.verdict}
        if c is not None:
            row.update(
                measure=c.measure, value_better=scale(c.value_a), value_worse=scale(c.value_b),
                difference=scale(c.difference), low=scale(c.low), high=scale(c.high),
                half_width=scale(c.half_width), units=c.units, unit=c.unit,
                seeds=len(claim.per_seed),
            )  # fmt: skip
        if claim.subset is not None:  # claim 3 decided on the full set: the subset's beside it
            row.update(subset_difference=scale(claim.subset.difference),
                       subset_low=scale(claim.subset.low), subset_high=scale(claim.subset.high),
                       subset_verdict=claim.subset.verdict, sets_agree=claim.sets_agree)  # fmt: skip
        rows[claim.spec.number] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "claim"
    return table
