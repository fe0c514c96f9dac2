"""Everything that makes checkpoints: corpus, model, losses, schedules, trainer."""

from training.data.items import read_items, write_items

__all__: list[str] = []
__all__ += ["read_items", "write_items"]
