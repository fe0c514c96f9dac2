"""The training objective of one step: (loss_av, loss_aud) from the model's outputs.

Kept apart from training/losses.py, whose pieces the model itself uses, so that the two modules do not
import each other: losses <- model <- objective.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from training.losses import masked_margin_softmax
from training.model import SSLVGS, TrainOutputs

__all__ = ["objective"]


def _identity(x: Tensor) -> Tensor:
    return x


def objective(
    model: SSLVGS,
    out: TrainOutputs,
    image_index: Tensor,
    global_sum: Callable[[Tensor], Tensor] = _identity,
    gather: Callable[[Tensor], Tensor] = _identity,
) -> tuple[Tensor | None, Tensor | None]:
    """(loss_av, loss_aud) of the global batch from one process's `TrainOutputs` (None for an
    objective the forward did not compute).

    loss_aud = contrastive / masked frames + diversity_weight * diversity + penalty_weight * mean
    squared feature; loss_av = masked margin softmax over all captions of the global batch.
    `global_sum` and `gather` are differentiable collectives under DDP (identity in one process): every
    process then computes the same global losses, and DDP's gradient averaging undoes the factor
    world_size that their backward passes introduce.
    """
    cfg = model.cfg
    loss_av = loss_aud = None
    if out.has_aud:
        masked = global_sum(out.masked_count.detach())
        contrastive = global_sum(out.contrastive_sum) / masked.clamp(min=1.0)
        diversity = model.quantizer.diversity_loss(
            global_sum(out.prob_sum), global_sum(out.quantized_count)
        )
        penalty = global_sum(out.feature_square_sum) / global_sum(out.feature_count.detach())
        loss_aud = (
            contrastive + cfg.diversity_weight * diversity + cfg.feature_penalty_weight * penalty
        )
    if out.has_av:
        loss_av = masked_margin_softmax(
            gather(out.image_embedding),
            gather(out.audio_embedding),
            gather(image_index),
            cfg.margin,
            cfg.score,
        )
    return loss_av, loss_aud
