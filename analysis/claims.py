"""The paper's three claims, each stated with the paper's numbers and what a study measured.

Run names follow the paper: base models "W2V2", "VGS", "VGS+"; scheduled variants "(A,B)". A claim
whose runs were not trained (a --quick study has fewer variants) says so instead of a verdict.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from analysis.study import Study
from analysis.tables import best_layer

__all__ = ["claims_markdown", "PAPER"]

# The paper's numbers (Table I: recall in %, Table II: best-layer ABX in %), from docs/paper.md.
PAPER = {
    "recall": {
        "(W2V2,VGS)": (32.3, 74.9, 44.8, 84.8),  # speech->image R@1, R@10, image->speech R@1, R@10
        "VGS": (28.4, 69.4, 40.1, 81.5),
        "(VGS,W2V2)": (0.0, 0.2, None, None),
    },
    "abx": {  # within / across speaker (layer)
        "(VGS+,VGS)": (4.50, 6.02),
        "VGS": (4.82, 6.44),
        "VGS+": (5.09, 6.81),
        "W2V2": (7.05, 9.53),
    },
}
RECALL_KEYS = (
    "speech_to_image_r1",
    "speech_to_image_r10",
    "image_to_speech_r1",
    "image_to_speech_r10",
)


def _recall_text(study: Study, name: str) -> str:
    values = study.recall[name]
    shown = [100 * values.get(k, math.nan) for k in RECALL_KEYS]
    return f"{name} {shown[0]:.1f}/{shown[1]:.1f} speech→image, {shown[2]:.1f}/{shown[3]:.1f} image→speech"


def _mean_recall(study: Study, name: str) -> float:
    return sum(study.recall[name].get(k, math.nan) for k in RECALL_KEYS) / len(RECALL_KEYS)


def _verdict(better: float, worse: float, tolerance: float = 1e-9) -> str:
    """ "holds here" if `better` > `worse`, "is undecided here" on a tie, else "does not hold here"."""
    if abs(better - worse) <= tolerance:
        return "is undecided here (a tie)"
    return "holds here" if better > worse else "does not hold here"


def _missing(study: Study, names: Sequence[str]) -> str:
    absent = [n for n in names if n not in study.runs]
    return f"**Not measured**: this study did not train {', '.join(absent)}.\n" if absent else ""


def _claim_sequential_retrieval(study: Study) -> str:
    """Claim 1: W2V2 first, then VGS, retrieves better than simultaneous training (VGS+)."""
    text = (
        "### 1. Sequential training (W2V2 first, VGS next) retrieves better than simultaneous (VGS+)\n\n"
        "Paper (R@1/R@10, %): (W2V2,VGS) 32.3/74.9 speech→image and 44.8/84.8 image→speech, the best "
        "of all models; VGS alone 28.4/69.4 and 40.1/81.5.\n\n"
    )
    missing = _missing(study, ["(W2V2,VGS)", "VGS+"])
    if missing:
        return text + missing
    names = [n for n in ("(W2V2,VGS)", "VGS+", "VGS") if n in study.runs]
    text += "Here: " + "; ".join(_recall_text(study, n) for n in names) + ".\n\n"
    sequential, simultaneous = _mean_recall(study, "(W2V2,VGS)"), _mean_recall(study, "VGS+")
    verdict = _verdict(sequential, simultaneous)
    return text + (
        f"Mean of the four recalls: (W2V2,VGS) {100 * sequential:.1f} vs VGS+ "
        f"{100 * simultaneous:.1f}: the claim **{verdict}**.\n"
    )


def _validation_recall_column(study: Study, name: str) -> str | None:
    """The logged validation recall to follow: speech->image R@1 (R@10 saturates on the small
    validation splits of the embedded corpus), else any recall column."""
    columns = [c for c in study.metrics[name].columns if "recall" in c.lower() or "_r1" in c]
    preferred = [c for c in columns if "speech_to_image" in c and c.endswith("_r1")]
    return (preferred or columns or [None])[0]


def _pretty(column: str) -> str:
    """speech_to_image_r1 -> speech→image R@1."""
    return column.replace("speech_to_image_r", "speech→image R@").replace(
        "image_to_speech_r", "image→speech R@"
    )


def _retained(study: Study, name: str) -> tuple[float, float, float, str] | None:
    """(validation recall at the switch, final, final / at switch, its column) of a variant."""
    column = _validation_recall_column(study, name)
    switch = study.switch(name)
    if column is None or switch is None:
        return None
    table = study.metrics[name].set_index("epoch")[column].dropna()
    if switch not in table.index:
        return None
    at_switch, final = float(table.loc[switch]), float(table.iloc[-1])
    return at_switch, final, final / at_switch if at_switch > 0 else math.nan, column


def _claim_forgetting(study: Study) -> str:
    """Claim 2: simultaneous training forgets less when the objective switches."""
    text = (
        "### 2. Simultaneous training reduces catastrophic forgetting at the switch\n\n"
        "Paper: after switching to W2V2, (VGS+,W2V2) keeps much of its recall while (VGS,W2V2) "
        "collapses to chance (R@1/R@10 speech→image 0.0/0.2).\n\n"
    )
    missing = _missing(study, ["(VGS+,W2V2)", "(VGS,W2V2)"])
    if missing:
        return text + missing
    lines = []
    for name in ("(VGS+,W2V2)", "(VGS,W2V2)"):
        kept = _retained(study, name)
        line = f"- {_recall_text(study, name)} (test, final epoch)"
        if kept is not None:
            line += (
                f"; validation {_pretty(kept[3])} {100 * kept[0]:.1f} at the switch, "
                f"{100 * kept[1]:.1f} at the "
                f"end ({100 * kept[2]:.0f}% kept)"
            )
        lines.append(line)
    simultaneous, sequential = _mean_recall(study, "(VGS+,W2V2)"), _mean_recall(study, "(VGS,W2V2)")
    verdict = _verdict(simultaneous, sequential)
    return (
        text
        + "Here:\n"
        + "\n".join(lines)
        + f"\n\nMean final recall {100 * simultaneous:.1f} vs {100 * sequential:.1f}: the claim "
        f"**{verdict}**.\n"
    )


def _claim_generalisation(study: Study) -> str:
    """Claim 3: VGS-learned phonemic representations generalise better (lower ABX on read speech)."""
    text = (
        "### 3. Phonemic representations learned through VGS generalise better than SSL's\n\n"
        "Paper (best-layer ABX %, LibriSpeech, within/across speaker): (VGS+,VGS) 4.50/6.02, "
        "VGS 4.82/6.44, VGS+ 5.09/6.81, W2V2 7.05/9.53.\n\n"
    )
    missing = _missing(study, ["VGS", "W2V2"])
    within, across = "read, within speaker", "read, across speaker"
    if missing or within not in study.abx or across not in study.abx:
        return text + (missing or "**Not measured**: no ABX on the read set.\n")
    cells = []
    for name in [n for n in ("(VGS+,VGS)", "VGS", "VGS+", "W2V2") if n in study.runs]:
        (w, wl), (a, al) = best_layer(study.abx[within][name]), best_layer(study.abx[across][name])
        cells.append(f"{name} {100 * w:.2f} ({wl}) / {100 * a:.2f} ({al})")
    vgs = [best_layer(study.abx[c]["VGS"])[0] for c in (within, across)]
    w2v2 = [best_layer(study.abx[c]["W2V2"])[0] for c in (within, across)]
    # One number per model: the mean of the two conditions (lower is better, hence the signs).
    verdict = _verdict(-sum(vgs), -sum(w2v2))
    return text + (
        "Here (read set, best layer in parentheses): " + "; ".join(cells) + ".\n\n"
        f"Mean of the two conditions, VGS {50 * sum(vgs):.2f} vs W2V2 {50 * sum(w2v2):.2f}: "
        f"the claim **{verdict}**.\n"
    )


def claims_markdown(study: Study) -> str:
    """The section of the report that states the three claims with this study's measurements."""
    return "\n".join(
        [
            "## The paper's three claims, measured here\n",
            _claim_sequential_retrieval(study),
            _claim_forgetting(study),
            _claim_generalisation(study),
        ]
    )
