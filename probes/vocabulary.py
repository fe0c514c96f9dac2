"""One vocabulary for the options every probe takes, in the API and the CLI alike.

The option values are `Literal` types, so that `help()`, tab completion and type checkers show them,
and `check_choice` is the one error a wrong value gets: it names the option and lists what is allowed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

__all__ = [
    "Speaker",
    "Context",
    "Distance",
    "Pooling",
    "Compat",
    "Layers",
    "SPEAKERS",
    "CONTEXTS",
    "DISTANCES",
    "check_choice",
]

Speaker = Literal["within", "across"]
Context = Literal["within", "any", "across"]
Distance = Literal["angular", "cosine", "euclidean"]
Pooling = Literal["mean"] | None
Compat = Literal["librilight"] | None
# A layer (0 = what enters the first transformer layer, 1..N transformer layers), several, or "all".
Layers = int | Sequence[int] | range | Literal["all"]

SPEAKERS: tuple[str, ...] = get_args(Speaker)
CONTEXTS: tuple[str, ...] = get_args(Context)
DISTANCES: tuple[str, ...] = get_args(Distance)


def check_choice(option: str, value: object, allowed: Sequence[object]) -> None:
    """ValueError naming `option` and listing `allowed` when `value` is not one of them."""
    if value not in allowed:
        shown = ", ".join(repr(choice) for choice in allowed)
        raise ValueError(f"{option} must be one of {shown}; got {value!r}")
