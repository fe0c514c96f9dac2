"""Everything that makes checkpoints: corpus, model, losses, schedules, trainer."""

__all__: list[str] = []
