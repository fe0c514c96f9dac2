"""OUT/reproduction.json, written by `sslvgs reproduce` and read back wherever OUT now is.

Every path in it is stored relative to OUT when it lies inside OUT (the corpus, the runs, the ABX
subsets), so a moved, copied or unpacked reproduction works in place and never reads or writes its
origin; a path outside OUT (a `corpus=` given elsewhere) stays absolute. Files written before this
stored absolute paths: they are read as they are.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from training.run.directory import recorded_path

__all__ = ["reproduction_settings", "relative_to", "SETTINGS"]

SETTINGS = "reproduction.json"
# The path fields of an ABX condition's grid options.
_ABX_PATHS = ("items", "wavs")


def relative_to(path: str | os.PathLike, out: str | os.PathLike) -> str:
    """`path` as reproduction.json stores it: relative to `out` when inside it, else absolute."""
    path, out = Path(path).resolve(), Path(out).resolve()
    if path == out or out in path.parents:
        return os.path.relpath(path, out)
    return str(path)


def store_paths(settings: dict[str, Any], out: str | os.PathLike) -> dict[str, Any]:
    """reproduction.json's contents with its paths stored relative to `out` (see `relative_to`)."""
    return _map_paths(settings, lambda p: relative_to(p, out))


def reproduction_settings(out: str | os.PathLike) -> dict[str, Any]:
    """OUT/reproduction.json with every path absolute, resolved against OUT wherever OUT is now.

    Keys: preset, corpus, plan, runs (name -> path, base, switch, model, seed, probed_epochs) and abx
    (condition -> the `analysis.grid` options that read the reproduction's cached cells).
    """
    out = Path(out)
    path = out / SETTINGS
    if not path.is_file():
        raise FileNotFoundError(f"{out}: no {SETTINGS}; run `sslvgs reproduce {out}` first")
    return _map_paths(json.loads(path.read_text()), lambda p: str(recorded_path(p, out)))


def _map_paths(settings: dict[str, Any], convert) -> dict[str, Any]:
    out = dict(settings)
    if out.get("corpus"):
        out["corpus"] = convert(out["corpus"])
    out["runs"] = {
        name: {
            **run,
            "path": convert(run["path"]),
            "base": convert(run["base"]) if run.get("base") else None,
        }
        for name, run in settings.get("runs", {}).items()
    }
    out["abx"] = {
        condition: {k: convert(v) if k in _ABX_PATHS and v else v for k, v in options.items()}
        for condition, options in settings.get("abx", {}).items()
    }
    return out
