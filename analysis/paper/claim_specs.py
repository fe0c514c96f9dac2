"""The paper's three claims as it states them, and the paper's own numbers they rest on.

`ClaimSpec` is a claim as the paper makes it (which model beats which, on recall or on ABX, and
the paper's figures for it), `CLAIMS` the three of them, `PAPER` the numbers of its Tables I and
II. They are the paper's side only, apart from claims.py, which decides each claim on a study and
writes the verdicts; `CLAIMS` and `PAPER` still import from `analysis.paper.claims`.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ClaimSpec", "CLAIMS", "PAPER"]


# The paper's numbers (Table I: recall in %, Table II: best-layer ABX in %).
PAPER = {
    "recall": {
        "(W2V2,VGS)": (32.3, 74.9, 44.8, 84.8),  # speech->image R@1, R@10, image->speech R@1, R@10
        "VGS": (28.4, 69.4, 40.1, 81.5),
        "VGS+": (29.0, 70.1, 40.1, 81.8),
        "(VGS,W2V2)": (0.0, 0.2, None, None),
    },
    "abx": {  # within / across speaker (layer)
        "(VGS+,VGS)": (4.50, 6.02),
        "VGS": (4.82, 6.44),
        "VGS+": (5.09, 6.81),
        "W2V2": (7.05, 9.53),
    },
}


@dataclass(frozen=True)
class ClaimSpec:
    """A claim: `better` beats `worse` on `measure` ("recall" or "abx")."""

    number: int
    title: str
    paper: str
    better: str
    worse: str
    measure: str


CLAIMS = (
    ClaimSpec(
        1,
        "Sequential training (W2V2 first, VGS next) retrieves better than simultaneous (VGS+)",
        "(R@1/R@10, %): (W2V2,VGS) 32.3/74.9 speech→image and 44.8/84.8 image→speech, the best of "
        "all models; VGS+, the model it is compared with, 29.0/70.1 and 40.1/81.8.",
        "(W2V2,VGS)",
        "VGS+",
        "recall",
    ),
    ClaimSpec(
        2,
        "Simultaneous training reduces catastrophic forgetting at the switch",
        "after switching to W2V2, (VGS+,W2V2) keeps much of its recall while (VGS,W2V2) collapses "
        "to chance (R@1/R@10 speech→image 0.0/0.2).",
        "(VGS+,W2V2)",
        "(VGS,W2V2)",
        "recall",
    ),
    ClaimSpec(
        3,
        "Phonemic representations learned through VGS generalise better than SSL's",
        "(best-layer ABX %, LibriSpeech, within/across speaker): (VGS+,VGS) 4.50/6.02, VGS "
        "4.82/6.44, VGS+ 5.09/6.81, W2V2 7.05/9.53.",
        "VGS",
        "W2V2",
        "abx",
    ),
)
