"""ABX conditions: the ZeroSpeech speaker x context modes as instances of the general on/by/across form.

A condition says which items are compared (``on``: A and B differ in it, X has A's value), which labels
all three share (``by``), and which labels X must not share with A and B (``across``: X differs in every
one of them). ``levels`` is the averaging order of the per-cell scores (see ``result.collapse``).

The item column ``context`` is ``prev + "+" + next`` (libri-light's context id).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from probes.vocabulary import CONTEXTS, SPEAKERS, Context, Speaker, check_choice

__all__ = [
    "Condition",
    "zerospeech_condition",
    "Subsampling",
    "make_condition",
    "SPEAKER_MODES",
    "CONTEXT_MODES",
]

# The ZeroSpeech modes are the probes' vocabulary (probes/vocabulary.py), not a copy of it.
SPEAKER_MODES = SPEAKERS
CONTEXT_MODES = CONTEXTS


@dataclass(frozen=True)
class Condition:
    """``on``/``by``/``across`` item columns and the averaging ``levels`` (each a column or a tuple).

    Cells: A = items with on-value a, B = items with on-value b != a, both sharing the by- and
    across-values; X = A's items (minus x = a) when ``across`` is empty, else items with on-value a, the
    same by-values and different values in every across column.
    """

    on: str
    by: tuple[str, ...] = ()
    across: tuple[str, ...] = ()
    levels: tuple[str | tuple[str, ...], ...] = ()
    speaker: Speaker | None = None
    context: Context | None = None

    def __post_init__(self) -> None:
        columns = [self.on, *self.by, *self.across]
        if len(set(columns)) != len(columns):
            raise ValueError(f"on, by and across must name different columns, got {columns}")

    @property
    def is_symmetric(self) -> bool:
        """Within-type cells: X is drawn from A's own items (pairs x = a excluded)."""
        return not self.across

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.on, *self.by, *self.across)

    @property
    def name(self) -> str:
        if self.speaker is not None:
            return f"{self.speaker} speaker, {self.context} context"
        parts = [f"on {self.on}"]
        if self.by:
            parts.append(f"by {', '.join(self.by)}")
        if self.across:
            parts.append(f"across {', '.join(self.across)}")
        return ", ".join(parts)


def zerospeech_condition(speaker: Speaker = "within", context: Context = "within") -> Condition:
    """The condition for a speaker mode (within|across) and a context mode (within|any|across).

    Averaging (docs/abx.md): within speaker, over contexts, then speakers, then phone pairs; across
    speaker, over (context, X speaker) jointly, then speakers, then phone pairs. Context "across"
    (X has A's phone in another context) averages over (context, X context) jointly in the same place.
    """
    check_choice("speaker", speaker, SPEAKER_MODES)
    check_choice("context", context, CONTEXT_MODES)
    by: list[str] = []
    across: list[str] = []
    if context == "within":
        by.append("context")
    elif context == "across":
        across.append("context")
    if speaker == "within":
        by.append("speaker")
    else:
        across.append("speaker")
    if context != "any":
        first: tuple = ("context",)  # X's labels (*_x) are averaged together with the first level
    elif speaker == "across":
        first = (("speaker_x",),)  # libri-light: over X speaker, then speakers (not jointly)
    else:
        first = ()
    levels = (*first, "speaker")
    return Condition("phone", tuple(by), tuple(across), levels, speaker=speaker, context=context)


@dataclass(frozen=True)
class Subsampling:
    """The subsampling options; ``active`` when either limit is set."""

    max_size_group: int | None = None
    max_x_across: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("max_size_group", "max_x_across"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, (int, np.integer)) or value < 1):
                raise ValueError(f"{name} must be a positive integer or None, got {value!r}")

    @property
    def active(self) -> bool:
        return self.max_size_group is not None or self.max_x_across is not None


def make_condition(
    speaker: Speaker = "within",
    context: Context = "within",
    on: str | None = None,
    by: list[str] | tuple[str, ...] | None = None,
    across: list[str] | tuple[str, ...] | None = None,
    levels: list | tuple | None = None,
) -> Condition:
    """A ZeroSpeech condition, or the general form when ``on`` is given (``levels`` default: by, across)."""
    if on is None:
        if by is not None or across is not None:
            raise ValueError(
                "by/across need on= (the general form); speaker/context name the ZeroSpeech ones"
            )
        condition = zerospeech_condition(speaker, context)
        if levels is None:
            return condition
        return Condition(
            condition.on, condition.by, condition.across, tuple(levels), speaker, context
        )
    by, across = tuple(by or ()), tuple(across or ())
    return Condition(on, by, across, tuple(levels) if levels is not None else (*by, *across))
