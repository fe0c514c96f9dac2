"""Procedural scenes: 2-5 coloured shapes on a plain background, their PNG, and LXMERT-style regions.

A scene is a list of objects, each a shape, a colour, a size and a box (x1, y1, x2, y2 in [0, 1], y
down). For the model, a scene becomes 36 region features in the LXMERT "obj36" layout: every object
is seen by a few detector-like regions (its box, jittered), whose features are a fixed random
projection of the object's attributes plus noise; the remaining regions are background crops and
distractor crops (random boxes, features from the background direction or pure noise). The projection
is fixed per corpus (drawn from the corpus seed), so the same attributes always point the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

__all__ = [
    "SHAPES",
    "COLOURS",
    "SIZES",
    "NUM_REGIONS",
    "SceneObject",
    "random_scene",
    "render_scene",
    "RegionEncoder",
]

SHAPES = ("circle", "square", "triangle", "diamond", "star", "cross")
COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 210, 40),
    "purple": (140, 60, 180),
    "orange": (245, 140, 30),
    "black": (20, 20, 20),
    "white": (245, 245, 245),
}
SIZES = {"small": (0.12, 0.18), "large": (0.26, 0.34)}  # side length range, fraction of the image
NUM_REGIONS = 36
REGIONS_PER_OBJECT = 3
BACKGROUND = (150, 150, 150)


@dataclass(frozen=True)
class SceneObject:
    """One object: attribute names and its box (x1, y1, x2, y2), normalised to [0, 1], y down."""

    shape: str
    colour: str
    size: str
    box: tuple[float, float, float, float]

    @property
    def centre(self) -> tuple[float, float]:
        x1, y1, x2, y2 = self.box
        return (x1 + x2) / 2, (y1 + y2) / 2


def _overlaps(box: tuple[float, ...], others: list[tuple[float, ...]], gap: float = 0.02) -> bool:
    return any(
        box[0] < o[2] + gap and o[0] < box[2] + gap and box[1] < o[3] + gap and o[1] < box[3] + gap
        for o in others
    )


def random_scene(
    rng: np.random.Generator, min_objects: int = 2, max_objects: int = 5
) -> list[SceneObject]:
    """Draw 2-5 non-overlapping objects with random attributes (resampling boxes that collide)."""
    count = int(rng.integers(min_objects, max_objects + 1))
    objects: list[SceneObject] = []
    boxes: list[tuple[float, ...]] = []
    while len(objects) < count:
        size = str(rng.choice(list(SIZES)))
        for _attempt in range(100):
            side = float(rng.uniform(*SIZES[size]))
            x1, y1 = (float(v) for v in rng.uniform(0.02, 0.98 - side, size=2))
            box = (round(x1, 4), round(y1, 4), round(x1 + side, 4), round(y1 + side, 4))
            if not _overlaps(box, boxes):
                break
        else:  # a crowded scene: fall back to fewer objects rather than loop forever
            break
        shape = str(rng.choice(SHAPES))
        colour = str(rng.choice(list(COLOURS)))
        objects.append(SceneObject(shape, colour, size, box))
        boxes.append(box)
    if len(objects) < min_objects:
        raise RuntimeError("could not place the minimum number of objects")
    return objects


def _shape_polygon(shape: str, box: tuple[float, float, float, float]) -> list[tuple[float, float]]:
    x1, y1, x2, y2 = box
    cx, cy, r = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2
    if shape == "triangle":
        return [(cx, y1), (x2, y2), (x1, y2)]
    if shape == "diamond":
        return [(cx, y1), (x2, cy), (cx, y2), (x1, cy)]
    if shape == "star":
        angles = np.pi / 2 + np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, r, 0.45 * r)
        return [
            (cx + q * np.cos(a), cy - q * np.sin(a)) for q, a in zip(radii, angles, strict=True)
        ]
    if shape == "cross":
        t = r / 3
        return [
            (cx - t, y1), (cx + t, y1), (cx + t, cy - t), (x2, cy - t), (x2, cy + t), (cx + t, cy + t),
            (cx + t, y2), (cx - t, y2), (cx - t, cy + t), (x1, cy + t), (x1, cy - t), (cx - t, cy - t),
        ]  # fmt: skip
    raise ValueError(f"no polygon for shape {shape!r}")


def render_scene(objects: list[SceneObject], size: int = 224) -> Image.Image:
    """Draw the scene as an RGB image of `size` x `size` pixels."""
    image = Image.new("RGB", (size, size), BACKGROUND)
    draw = ImageDraw.Draw(image)
    for obj in objects:
        box = tuple(v * (size - 1) for v in obj.box)
        colour = COLOURS[obj.colour]
        if obj.shape == "circle":
            draw.ellipse(box, fill=colour)
        elif obj.shape == "square":
            draw.rectangle(box, fill=colour)
        else:
            draw.polygon(_shape_polygon(obj.shape, box), fill=colour)
    return image


def _attribute_vector(obj: SceneObject) -> np.ndarray:
    """One-hot shape, colour and size, then the box centre and side: [len(SHAPES) + len(COLOURS) + 5]."""
    one_hot = np.zeros(len(SHAPES) + len(COLOURS) + len(SIZES), dtype=np.float64)
    one_hot[SHAPES.index(obj.shape)] = 1.0
    one_hot[len(SHAPES) + list(COLOURS).index(obj.colour)] = 1.0
    one_hot[len(SHAPES) + len(COLOURS) + list(SIZES).index(obj.size)] = 1.0
    x, y = obj.centre
    return np.concatenate([one_hot, [x, y, obj.box[2] - obj.box[0]]])


ATTRIBUTE_DIM = len(SHAPES) + len(COLOURS) + len(SIZES) + 3


def _jitter(rng: np.random.Generator, box: tuple[float, ...], amount: float) -> np.ndarray:
    side = box[2] - box[0]
    jittered = np.asarray(box) + rng.normal(0.0, amount * side, size=4)
    jittered = np.clip(jittered, 0.0, 1.0)
    jittered[2:] = np.maximum(jittered[2:], jittered[:2] + 0.01)
    return np.clip(jittered, 0.0, 1.0)


def _random_box(rng: np.random.Generator) -> np.ndarray:
    x1, y1 = rng.uniform(0.0, 0.8, size=2)
    w, h = rng.uniform(0.1, 1.0, size=2) * (1.0 - np.array([x1, y1]))
    return np.array([x1, y1, x1 + w, y1 + h])


class RegionEncoder:
    """Scene -> (feats float32 [36, dim], boxes float32 [36, 4]) with a projection fixed by `seed`.

    Rows 0 .. 3 * n_objects - 1 are object regions (REGIONS_PER_OBJECT per object, the first being the
    exact box); the rest alternate background crops and distractor crops.
    """

    def __init__(self, dim: int, seed: int, noise: float = 0.1) -> None:
        if dim < 1:
            raise ValueError(f"region feature dimension must be positive, got {dim}")
        projection_rng = np.random.default_rng([seed, 0x5EED])
        scale = 1.0 / np.sqrt(ATTRIBUTE_DIM)
        self.projection = projection_rng.normal(0.0, scale, size=(ATTRIBUTE_DIM, dim))
        self.background = (
            projection_rng.normal(0.0, 1.0 / np.sqrt(dim), size=dim) * np.sqrt(dim) / 4
        )
        self.dim = dim
        self.noise = noise

    def __call__(
        self, objects: list[SceneObject], rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Region features and boxes of one scene; `rng` draws the jitter, noise and distractors."""
        feats = np.empty((NUM_REGIONS, self.dim), dtype=np.float64)
        boxes = np.empty((NUM_REGIONS, 4), dtype=np.float64)
        row = 0
        for obj in objects[: NUM_REGIONS // REGIONS_PER_OBJECT]:
            signal = _attribute_vector(obj) @ self.projection
            for k in range(REGIONS_PER_OBJECT):
                boxes[row] = obj.box if k == 0 else _jitter(rng, obj.box, 0.1)
                noise = self.noise * (1 + k)
                feats[row] = signal + rng.normal(0.0, noise, size=self.dim)
                row += 1
        for k in range(NUM_REGIONS - row):
            boxes[row] = _random_box(rng)
            if k % 2 == 0:  # a background crop
                feats[row] = self.background + rng.normal(0.0, self.noise, size=self.dim)
            else:  # a distractor crop: nothing in particular
                feats[row] = rng.normal(0.0, 0.5, size=self.dim)
            row += 1
        return feats.astype(np.float32), boxes.astype(np.float32)
