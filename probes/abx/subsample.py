"""Optional seeded subsampling (placeholder, filled in below)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Subsampling", "count_subsampled"]


@dataclass(frozen=True)
class Subsampling:
    max_size_group: int | None = None
    max_x_across: int | None = None
    seed: int = 0

    @property
    def active(self) -> bool:
        return self.max_size_group is not None or self.max_x_across is not None


def count_subsampled(layout, block, d_rc, d_cr, sampling):
    raise NotImplementedError
