"""The metrics a run logs and a report shows, as data: their key, title and direction.

The trainer logs validation recall under the keys `training.retrieval` reports
(``speech_to_image_r1``: direction and cut-off k); the report, the tables, the claims and the
forgetting table look metrics up here instead of parsing names back.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Metric", "METRICS", "RECALL_KEYS", "recall_key", "metric", "TABLE_RECALLS"]

DIRECTIONS = ("speech_to_image", "image_to_speech")  # as training.retrieval.DIRECTIONS
ARROWS = {"speech_to_image": "speech→image", "image_to_speech": "image→speech"}
KS = (1, 5, 10)


@dataclass(frozen=True)
class Metric:
    """A logged or reported metric. direction/k: for a recall; higher_is_better: its direction."""

    key: str
    title: str
    higher_is_better: bool
    direction: str | None = None
    k: int | None = None

    @property
    def is_recall(self) -> bool:
        return self.k is not None


def recall_key(direction: str, k: int) -> str:
    """The key of recall@k in `direction`, as the trainer logs it and `probes.recall` reports it."""
    return f"{direction}_r{k}"


METRICS: dict[str, Metric] = {
    **{
        recall_key(d, k): Metric(recall_key(d, k), f"{ARROWS[d]} R@{k}", True, d, k)
        for d in DIRECTIONS
        for k in KS
    },
    "loss_av": Metric("loss_av", "loss_av", False),
    "loss_aud": Metric("loss_aud", "loss_aud", False),
}
# Table I's columns and the recalls a claim averages: R@1 and R@10 both ways, the paper's order.
TABLE_RECALLS = tuple(recall_key(d, k) for d in DIRECTIONS for k in (1, 10))
RECALL_KEYS = TABLE_RECALLS
# Names under which a metrics.jsonl may nest the same metrics (``{"recall": {...}}`` flattens to
# ``recall_speech_to_image_r1``).
_PREFIXES = ("", "recall_", "val_", "validation_")


def metric(name: str) -> Metric | None:
    """The metric logged as `name` (also under a nesting prefix), or None for any other column."""
    for prefix in _PREFIXES:
        if name.startswith(prefix) and name[len(prefix) :] in METRICS:
            return METRICS[name[len(prefix) :]]
    return None
