"""What a run is: the config.json of a new run, and the rules that let a resume continue one.

A run's config.json records everything that decides its trajectory: the corpus, the region features,
the preset, the model and training configurations, the schedule and where it started (init_from).
A resume takes every field it is not given from there; a field it is given must agree with it, or be
named in `allow_change`, and then the change is recorded in config.json's ``changes`` with the first
epoch it applies to (docs/training.md). This module is light (no torch).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.run.config import ModelConfig, TrainConfig, config_from_dict, config_to_dict
from training.run.config import preset as preset_configs
from training.run.directory import (
    CONFIG,
    RunConfigError,
    list_checkpoints,
    read_config,
    resolve_checkpoint,
    resolved_config,
    stored_config,
)
from training.schedules import Stage, parse_schedule

__all__ = ["RunRequest", "Run", "plan_run", "region_paths", "DEFAULT_PRESET"]

DEFAULT_PRESET = "tiny"
# The weights of a run come from these: changing them is a new run (init_from=RUN), not a resume.
FIXED_FIELDS = ("preset", "init_from")
_ALIASES = {"stage_epochs": "schedule"}  # --allow-change stage_epochs means the schedule
_NOT_OPTIONS = ("schedule", "stage_epochs", "extra")  # TrainConfig fields that are not options


@dataclass(frozen=True)
class RunRequest:
    """What a `train` call asks for. None (or absent from `overrides`): not given, so a new run
    takes the preset's value and a resumed run its own."""

    corpus: Path
    run_dir: Path
    preset: str | None = None
    schedule: str | None = None
    stage_epochs: str | Sequence[int] | int | None = None
    init_from: str | os.PathLike | None = None
    regions: tuple[str, ...] | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)
    allow_change: tuple[str, ...] = ()
    resume: bool = False


@dataclass(frozen=True)
class Run:
    """The run to train, as config.json holds it; `stored` is config.json as it was on disk."""

    run_dir: Path
    preset: str
    model: ModelConfig
    train: TrainConfig
    stages: tuple[Stage, ...]
    corpus: Path
    regions: tuple[str, ...] | None = None
    start_epoch: int = 0  # the epoch of the checkpoint the run started from (0: from scratch)
    init: dict | None = None  # that checkpoint: path, checksum, epoch, step
    changes: tuple[dict, ...] = ()
    stored: dict | None = None

    @property
    def last_epoch(self) -> int:
        return self.start_epoch + sum(s.epochs for s in self.stages)

    @property
    def resumed(self) -> bool:
        return self.stored is not None

    def config(self) -> dict:
        """The contents of config.json: enough to rebuild the model and continue the schedule. Paths
        in or near the run are stored relative to it (`stored_path`), so a moved run keeps them."""
        return stored_config(self._config(), self.run_dir)

    def _config(self) -> dict:
        return json.loads(json.dumps({
            "format": 1,
            "preset": self.preset,
            "corpus": str(self.corpus),
            "regions": list(self.regions) if self.regions is not None else None,
            "schedule": [dataclasses.asdict(s) for s in self.stages],
            "start_epoch": self.start_epoch,
            "init_from": self.init,
            "model": config_to_dict(self.model),
            "train": config_to_dict(self.train),
            "changes": list(self.changes),
        }))  # fmt: skip

    def with_region_dim(self, dim: int, given: bool) -> Run:
        """The run with the region feature size `dim` the data has; RunConfigError if the run's model
        (or a `region_dim` given explicitly) takes another."""
        if (self.resumed or given) and self.model.region_dim != dim:
            where = _regions_text(self)
            raise RunConfigError(
                f"{where}: region features of dimension {dim}, but the run's model takes "
                f"region_dim {self.model.region_dim}"
            )
        return dataclasses.replace(self, model=dataclasses.replace(self.model, region_dim=dim))


def region_paths(regions: str | os.PathLike | Sequence[str | os.PathLike] | None):
    """A `regions` argument as a tuple of absolute path strings (None stays None)."""
    if regions is None:
        return None
    many = [regions] if isinstance(regions, str | os.PathLike) else list(regions)
    if not many:
        raise ValueError("regions: an empty list of paths")
    return tuple(str(Path(p).resolve()) for p in many)


def plan_run(request: RunRequest) -> Run:
    """The run `request` asks for: a new one, or (resume=True and a config.json there) the run on
    disk with the request checked against it. RunConfigError naming config.json otherwise."""
    config_path = request.run_dir / CONFIG
    if request.resume and config_path.exists():
        return _resumed(request, read_config(request.run_dir))
    if config_path.exists() or list_checkpoints(request.run_dir):
        hint = "pass resume=True (--resume) or another directory"
        if request.resume:
            hint = f"it has checkpoints but no {CONFIG}: use another directory"
        raise RunConfigError(f"{request.run_dir}: already holds a run; {hint}")
    return _new(request)


def _new(request: RunRequest) -> Run:
    preset = request.preset or DEFAULT_PRESET
    model_cfg, train_cfg = preset_configs(preset, **request.overrides)
    stages = parse_schedule(
        request.schedule or train_cfg.schedule, request.stage_epochs, train_cfg.stage_epochs
    )
    train_cfg = dataclasses.replace(
        train_cfg,
        schedule=",".join(s.name for s in stages),
        stage_epochs=tuple(s.epochs for s in stages),
    )
    return Run(
        run_dir=request.run_dir,
        preset=preset,
        model=model_cfg,
        train=train_cfg,
        stages=tuple(stages),
        corpus=request.corpus,
        regions=request.regions,
    )


# ---- resume -------------------------------------------------------------------------------------


def _options(config: dict) -> dict[str, Any]:
    """config.json as one flat namespace of the fields a command can give (JSON values)."""
    flat = {
        "corpus": config["corpus"],
        "regions": config.get("regions"),
        "preset": config["preset"],
        "schedule": config["schedule"],
        "init_from": (config.get("init_from") or {}).get("checkpoint"),
    }
    flat.update(config["model"])
    flat.update({k: v for k, v in config["train"].items() if k not in _NOT_OPTIONS})
    return flat


def _asked(request: RunRequest, stored: dict) -> dict[str, Any]:
    """The fields the request gives, as JSON values comparable with `_options(stored)`."""
    known = {f.name for f in dataclasses.fields(ModelConfig)} | {
        f.name for f in dataclasses.fields(TrainConfig) if f.name not in _NOT_OPTIONS
    }
    unknown = sorted(set(request.overrides) - known)
    if unknown:
        raise ValueError(f"unknown config field(s) {unknown}")
    asked: dict[str, Any] = {"corpus": str(request.corpus)}
    if request.regions is not None:
        asked["regions"] = list(request.regions)
    if request.preset is not None:
        asked["preset"] = request.preset
    if request.schedule is not None or request.stage_epochs is not None:
        train = stored["train"]
        stages = parse_schedule(
            request.schedule or train["schedule"], request.stage_epochs, train["stage_epochs"]
        )
        asked["schedule"] = [dataclasses.asdict(s) for s in stages]
    if request.init_from is not None:
        asked["init_from"] = str(Path(resolve_checkpoint(request.init_from)).resolve())
    asked.update(request.overrides)
    return json.loads(json.dumps(asked))


def _show(name: str, value: Any) -> str:
    if name == "schedule":
        names = ",".join(s["name"] for s in value)
        return f"{names!r} epochs {','.join(str(s['epochs']) for s in value)}"
    return repr(value)


def _resumed(request: RunRequest, stored: dict) -> Run:
    where = request.run_dir / CONFIG
    stored, recorded = resolved_config(stored, request.run_dir), stored
    allow = {_ALIASES.get(name, name) for name in request.allow_change}
    run_options = _options(stored)
    unknown = sorted(allow - set(run_options))
    if unknown:
        raise ValueError(f"allow_change: unknown field(s) {unknown} (fields of {where})")
    asked = _asked(request, stored)
    order = {name: i for i, name in enumerate(run_options)}  # as config.json lists them
    differ = {
        k: (run_options.get(k), asked[k])
        for k in sorted(asked, key=lambda k: order.get(k, len(order)))
        if run_options.get(k) != asked[k]
    }
    refused = [k for k in differ if k not in allow or k in FIXED_FIELDS]
    if refused:
        shown = ", ".join(
            f"{k} {_show(k, differ[k][0])} (asked {_show(k, differ[k][1])})" for k in refused
        )
        fixed = [k for k in refused if k in FIXED_FIELDS]
        hint = (
            f"{' and '.join(fixed)} cannot change: start a new run with init_from=RUN"
            if fixed
            else f"to change them deliberately, pass allow_change={tuple(refused)!r} "
            f"(--allow-change {','.join(refused)})"
        )
        raise RunConfigError(
            f"{where}: the run's configuration differs from the one asked for: {shown}; {hint}"
        )
    config = copy.deepcopy(stored)
    config.setdefault("regions", None)
    config.setdefault("changes", [])
    first_epoch = max(list_checkpoints(request.run_dir), default=stored["start_epoch"]) + 1
    for name, (old, new) in differ.items():
        _apply(config, name, new)
        _record(config["changes"], {"epoch": first_epoch, "field": name, "from": old, "to": new})
    return Run(
        run_dir=request.run_dir,
        preset=config["preset"],
        model=config_from_dict(ModelConfig, config["model"]),
        train=config_from_dict(TrainConfig, config["train"]),
        stages=tuple(Stage(**s) for s in config["schedule"]),
        corpus=Path(config["corpus"]),
        regions=tuple(config["regions"]) if config["regions"] is not None else None,
        start_epoch=config["start_epoch"],
        init=config["init_from"],
        changes=tuple(config["changes"]),
        stored=recorded,
    )


def _apply(config: dict, name: str, value: Any) -> None:
    if name in ("corpus", "regions"):
        config[name] = value
    elif name == "schedule":
        config["schedule"] = value
        config["train"]["schedule"] = ",".join(s["name"] for s in value)
        config["train"]["stage_epochs"] = [s["epochs"] for s in value]
    elif name in config["model"]:
        config["model"][name] = value
    else:
        config["train"][name] = value


def _record(changes: list[dict], change: dict) -> None:
    """Append `change`; a second change of one field before the same epoch replaces the first."""
    for earlier in changes:
        if (earlier["epoch"], earlier["field"]) == (change["epoch"], change["field"]):
            earlier["to"] = change["to"]
            return
    changes.append(change)


def _regions_text(run: Run) -> str:
    if run.regions is None:
        return str(run.corpus / "regions")
    return ", ".join(run.regions)
