"""The paper's nine models, named once: derived from the trainer's schedules
(`training.schedules.PAPER_SCHEDULES`), whose names are also the run directories' names.

Paper names: base models "W2V2", "VGS", "VGS+"; scheduled variants "(A,B)": A's objective first,
then B's. Schedule names: "w2v2", "vgs", "vgs+", "a-then-b".
"""

from __future__ import annotations

from training.schedules import PAPER_SCHEDULES

__all__ = ["BASES", "VARIANTS", "MODELS", "variant_name", "run_dir_name", "paper_name"]

# A stage's schedule name -> its name in the paper.
_PAPER = {"w2v2": "W2V2", "vgs": "VGS", "vgs+": "VGS+"}


def variant_name(a: str, b: str) -> str:
    """The paper's name of a scheduled variant: (A,B)."""
    return f"({a},{b})"


def paper_name(schedule: str) -> str:
    """A paper schedule's name in the paper: "vgs+" -> "VGS+", "vgs-then-w2v2" -> "(VGS,W2V2)"."""
    stages = PAPER_SCHEDULES[schedule][0].split(",")
    names = [_PAPER[stage] for stage in stages]
    return names[0] if len(names) == 1 else variant_name(*names)


# Paper name -> schedule (= run directory) name, in the paper's Table I order.
MODELS: dict[str, str] = {paper_name(schedule): schedule for schedule in PAPER_SCHEDULES}
# Base models: paper name -> the trainer's stage name.
BASES: dict[str, str] = {
    name: PAPER_SCHEDULES[schedule][0] for name, schedule in MODELS.items() if "," not in name
}
# The six scheduled variants (A, B).
VARIANTS: tuple[tuple[str, str], ...] = tuple(
    tuple(name.strip("()").split(",")) for name in MODELS if "," in name
)


def run_dir_name(name: str) -> str:
    """A run directory name for a paper name: "VGS+" -> "vgs+", "(VGS,W2V2)" -> "vgs-then-w2v2"."""
    if name not in MODELS:
        raise ValueError(f"{name!r} is not one of the paper's models: {', '.join(MODELS)}")
    return MODELS[name]
