"""Training schedules: which objective weight (alpha) for how many epochs.

    loss = alpha * loss_av + (1 - alpha) * loss_aud

A schedule is a comma list of stages, each `w2v2` (alpha 0), `vgs` (alpha 1), `vgs+` (alpha 0.5) or
`alpha=X`, with one epoch count per stage (`--schedule vgs,w2v2 --stage-epochs 20,50`). The paper's
nine variants are named presets (`PAPER_SCHEDULES`); `w2v2-then-vgs` is the paper's (W2V2,VGS).
Optimizer and learning-rate schedule restart at every stage; the weights carry over.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "Stage",
    "ScheduleError",
    "ALPHAS",
    "PAPER_SCHEDULES",
    "parse_schedule",
    "parse_epochs",
    "stage_of",
]

ALPHAS = {"w2v2": 0.0, "vgs": 1.0, "vgs+": 0.5}

# name -> (stages, epochs per stage): the base models (70 epochs) and the six scheduled variants
# (20 epochs of A, then 50 of B with the optimizer reset), Khorrami et al. 2023, Table I.
PAPER_SCHEDULES: dict[str, tuple[str, tuple[int, ...]]] = {
    "w2v2": ("w2v2", (70,)),
    "vgs": ("vgs", (70,)),
    "vgs+": ("vgs+", (70,)),
    "w2v2-then-vgs+": ("w2v2,vgs+", (20, 50)),
    "vgs-then-vgs+": ("vgs,vgs+", (20, 50)),
    "w2v2-then-vgs": ("w2v2,vgs", (20, 50)),
    "vgs-then-w2v2": ("vgs,w2v2", (20, 50)),
    "vgs+-then-w2v2": ("vgs+,w2v2", (20, 50)),
    "vgs+-then-vgs": ("vgs+,vgs", (20, 50)),
}


class ScheduleError(ValueError):
    """A schedule or epoch list that does not parse; the message quotes the offending entry."""


@dataclass(frozen=True)
class Stage:
    """One stage: its name as written (`vgs+`, `alpha=0.3`), its loss weight alpha, its epochs."""

    name: str
    alpha: float
    epochs: int

    @property
    def weights(self) -> tuple[float, float]:
        """(weight of loss_av, weight of loss_aud)."""
        return self.alpha, 1.0 - self.alpha


def _alpha(entry: str, schedule: str) -> float:
    if entry in ALPHAS:
        return ALPHAS[entry]
    if entry.startswith("alpha="):
        try:
            value = float(entry[len("alpha=") :])
        except ValueError:
            value = float("nan")
        if 0.0 <= value <= 1.0:
            return value
        raise ScheduleError(
            f"schedule {schedule!r}: {entry!r} needs a number in [0, 1] after 'alpha='"
        )
    raise ScheduleError(
        f"schedule {schedule!r}: unknown stage {entry!r}; use w2v2, vgs, vgs+ or alpha=X "
        f"(or one of the paper's schedules: {', '.join(PAPER_SCHEDULES)})"
    )


def parse_epochs(text: str | Sequence[int] | int) -> tuple[int, ...]:
    """'20,50' (or [20, 50], or 70) -> (20, 50); every count a positive integer."""
    if isinstance(text, int):
        items: list = [text]
    elif isinstance(text, str):
        items = [t.strip() for t in text.split(",")]
    else:
        items = list(text)
    epochs = []
    for item in items:
        try:
            value = int(item)
        except (TypeError, ValueError):
            raise ScheduleError(f"stage epochs {text!r}: {item!r} is not an integer") from None
        if value < 1 or str(value) != str(item).strip():
            raise ScheduleError(f"stage epochs {text!r}: {item!r} is not a positive integer")
        epochs.append(value)
    return tuple(epochs)


def parse_schedule(
    schedule: str,
    stage_epochs: str | Sequence[int] | int | None = None,
    default_epochs: Sequence[int] | None = None,
) -> list[Stage]:
    """Stages of a schedule string (or a paper preset name) with their epochs.

    Epochs come from `stage_epochs`, else from `default_epochs` if it has one count per stage (the
    model preset's default), else from the paper schedule; otherwise it is an error to leave them out.
    """
    text = schedule.strip().lower()
    if not text:
        raise ScheduleError("empty schedule")
    preset_epochs = None
    if text in PAPER_SCHEDULES:
        text, preset_epochs = PAPER_SCHEDULES[text]
    entries = [e.strip() for e in text.split(",")]
    if any(not e for e in entries):
        raise ScheduleError(f"schedule {schedule!r}: empty stage between commas")
    alphas = [_alpha(e, schedule) for e in entries]
    if stage_epochs is not None:
        epochs = parse_epochs(stage_epochs)
    elif default_epochs is not None and len(default_epochs) == len(entries):
        epochs = tuple(default_epochs)
    elif preset_epochs is not None:
        epochs = preset_epochs
    else:
        raise ScheduleError(
            f"schedule {schedule!r} has {len(entries)} stages: give their epochs (--stage-epochs)"
        )
    if len(epochs) != len(entries):
        raise ScheduleError(
            f"schedule {schedule!r} has {len(entries)} stage(s) but {len(epochs)} epoch count(s) {list(epochs)}"
        )
    return [Stage(name, alpha, n) for name, alpha, n in zip(entries, alphas, epochs, strict=True)]


def stage_of(stages: Sequence[Stage], epoch: int) -> tuple[int, int]:
    """(stage index, epoch within that stage, 1-based) of a 1-based epoch counted from the run's start."""
    first = 1
    for index, stage in enumerate(stages):
        if epoch < first + stage.epochs:
            return index, epoch - first + 1
        first += stage.epochs
    raise ValueError(f"epoch {epoch} is past the schedule's {first - 1} epochs")
