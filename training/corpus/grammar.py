"""Two small grammars: captions that describe a scene, and "read" sentences from another vocabulary.

Captions name one or two objects of the scene and, for two, a relation that holds in the picture:
"a small red circle to the left of a blue square", "a large yellow star and a green cross",
"there is a black diamond at the top". Size or colour may be left out, as people do.

Read sentences share no content word with the captions (people, animals, places and actions instead
of shapes and colours); they stand in for the paper's LibriSpeech ABX set, a different data set from
the one the models were trained on.
"""

from __future__ import annotations

import numpy as np

from training.corpus.scenes import SceneObject

__all__ = ["describe_scene", "read_sentence", "RELATIONS", "READ_VOCABULARY"]

RELATIONS = ("to the left of", "to the right of", "above", "below", "next to")

READ_VOCABULARY = {
    "subject": (
        "the old farmer", "my sister", "a young doctor", "the tired teacher", "our neighbour",
        "the little boy", "a clever fox", "the busy baker", "his uncle", "the quiet girl",
    ),
    "verb": (
        "bought", "painted", "carried", "found", "washed", "cooked", "opened", "borrowed",
        "hid", "fixed", "visited", "watched",
    ),
    "object": (
        "seven apples", "the kitchen window", "a heavy box", "her wooden chair", "the garden gate",
        "some fresh bread", "an empty bottle", "the broken clock", "two goats", "the village church",
    ),
    "time": (
        "on monday", "yesterday morning", "after dinner", "before the storm", "last summer",
        "at noon", "every evening", "in the rain",
    ),
}  # fmt: skip


def _noun_phrase(obj: SceneObject, rng: np.random.Generator) -> str:
    """ "a [size] [colour] shape"; one of size and colour may be left out, never the shape."""
    words = []
    keep = rng.random(2) < np.array([0.6, 0.85])
    if keep[0]:
        words.append(obj.size)
    if keep[1]:
        words.append(obj.colour)
    words.append(obj.shape)
    return "a " + " ".join(words)


def _relation(a: SceneObject, b: SceneObject, rng: np.random.Generator) -> str:
    """A relation that holds between a and b in the picture (y grows downwards)."""
    (ax, ay), (bx, by) = a.centre, b.centre
    true_ones = []
    if ax < bx - 0.1:
        true_ones.append("to the left of")
    if ax > bx + 0.1:
        true_ones.append("to the right of")
    if ay < by - 0.1:
        true_ones.append("above")
    if ay > by + 0.1:
        true_ones.append("below")
    if not true_ones:
        true_ones.append("next to")
    return str(rng.choice(true_ones))


def _place(obj: SceneObject) -> str:
    x, y = obj.centre
    vertical = "top" if y < 0.4 else "bottom" if y > 0.6 else ""
    horizontal = "left" if x < 0.4 else "right" if x > 0.6 else ""
    if vertical and horizontal:
        return f"at the {vertical} {horizontal}"
    if vertical or horizontal:
        return f"on the {vertical or horizontal}"
    return "in the middle"


def describe_scene(objects: list[SceneObject], rng: np.random.Generator) -> str:
    """One caption of the scene (lower case, no punctuation)."""
    order = rng.permutation(len(objects))
    a, b = objects[order[0]], objects[order[1]]
    kind = rng.choice(["relation", "relation", "pair", "place"])
    if kind == "relation":
        return f"{_noun_phrase(a, rng)} {_relation(a, b, rng)} {_noun_phrase(b, rng)}"
    if kind == "pair":
        return f"{_noun_phrase(a, rng)} and {_noun_phrase(b, rng)}"
    return f"there is {_noun_phrase(a, rng)} {_place(a)}"


def read_sentence(rng: np.random.Generator) -> str:
    """One sentence of the read grammar: subject verb object [time]."""
    parts = [str(rng.choice(READ_VOCABULARY[slot])) for slot in ("subject", "verb", "object")]
    if rng.random() < 0.7:
        parts.append(str(rng.choice(READ_VOCABULARY["time"])))
    return " ".join(parts)
