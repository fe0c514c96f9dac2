"""Atomic file writes for analysis outputs: training.fileio's, under the names analysis has used.

A reader (another process, a resumed run) sees either the old file or the new one, never half of one.
"""

from __future__ import annotations

from training.fileio import write_atomic, write_bytes_atomic, write_text_atomic

__all__ = ["write_atomic", "write_bytes_atomic", "write_text_atomic"]
