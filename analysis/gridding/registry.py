"""The probes a grid can run, behind one calling convention, and their cache keys.

A probe is measured on one checkpoint for a list of layers at a time:
``function(model, layers, *, checkpoint, epoch, scratch, **options) -> one float per layer`` (or, for
a probe with intervals, [layers, 3]: value, low, high), where `scratch` is a folder that lives while the
checkpoint is probed (for its activations; see `scratch_folder`).
Built-in probes wrap the `probes` package; a user callable ``f(model, layer, **options) -> float`` is
wrapped to loop over layers. Each probe also says what a cell's value depends on besides its options
(`identity`): the checkpoint's checksum, and that of any reference checkpoint it is compared with.

The built-in probes' functions are in builtin_probes.py, and what the cache keys hash (options,
files, folders, a user's function) in identity.py; this module puts them together.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from analysis.gridding.builtin_probes import (
    _abx,
    _cka,
    _cka_run,
    _drift,
    _drift_reference,
    _epoch_of,
    _phone,
    _reference_checkpoint,
)
from analysis.gridding.identity import _canonical, _file_hash, _function_identity, _path_identity

__all__ = [
    "ProbeSpec",
    "make_spec",
    "measure_checkpoint",
    "scratch_folder",
    "clean_scratch",
    "BUILTIN_PROBES",
]

LayerFunction = Callable[..., Sequence[float]]

# Part of the built-in probes' cache keys: bump it when what a built-in probe measures changes (a
# refactor that gives the same numbers must not throw every cached grid away, so their code is not
# hashed, unlike a user's callable).
BUILTIN_VERSION = 1
# Options that say where or how a probe runs, not what it measures: not part of the cache key.
RUNTIME_OPTIONS = ("device", "store")
# Options that name files or folders: keyed by their contents (`_path_identity`), not their place.
PATH_OPTIONS = ("items", "wavs", "source", "reference", "other", "corpus", "regions")
SCRATCH_PREFIX = "sslvgs-grid-"  # + "<pid>-": a folder whose process is gone is a leftover


@dataclass(frozen=True)
class ProbeSpec:
    """A probe with its options: what to run, how to name and key it, what its cells depend on."""

    name: str
    function: LayerFunction
    options: dict[str, Any] = field(default_factory=dict)
    references: Callable[[Path, int, dict[str, Any]], list[Path]] | None = None

    inputs: dict[str, str] = field(default_factory=dict)  # input file -> content hash, for the key
    # ABX: (resamples, confidence) of each cell's speaker-bootstrap interval, computed by the grid
    # from the cells' counts it caches (not part of the key: any number of resamples reads one cache).
    intervals: tuple[int, float] | None = None

    @functools.cached_property
    def options_json(self) -> str:
        """The options as canonical JSON: files, folders and checkpoints named by what they hold
        (`_path_identity`), not where they are, so a moved or copied run finds its cached grids;
        arrays and tables by content hash."""
        return json.dumps(
            {
                k: _path_identity(v) if k in PATH_OPTIONS and v is not None else _canonical(v)
                for k, v in sorted(self.options.items())
                if k not in RUNTIME_OPTIONS
            },
            sort_keys=True,
        )

    @functools.cached_property
    def key(self) -> str:
        """A short hash of the probe, its options and its input files' contents: the cache file's
        name. Computed once, so files that change while the grid runs do not move the cache."""
        inputs = json.dumps(self.inputs, sort_keys=True)
        function = (
            f"builtin-v{BUILTIN_VERSION}"
            if self.name in BUILTIN_PROBES and BUILTIN_PROBES[self.name][0] is self.function
            else _function_identity(self.function)
        )
        text = f"{self.name}|{function}|{self.options_json}|{inputs}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def keeps_counts(self) -> bool:
        """The built-in ABX probe: its cache keeps every cell's counts (abx_cells.py)."""
        return self.name == "abx" and self.function is BUILTIN_PROBES["abx"][0]

    def identity(self, checkpoint: Path, epoch: int) -> str:
        """What a cell at `epoch` was measured on: checkpoint checksums, the reference's included."""
        import training

        paths = [checkpoint] + (
            self.references(checkpoint, epoch, self.options) if self.references else []
        )
        return "+".join(training.model_identity(path) for path in paths)

    def scalar_options(self) -> dict[str, str | int | float]:
        """Options that fit a netCDF attribute as they are (strings, numbers)."""
        out: dict[str, str | int | float] = {}
        for key, value in self.options.items():
            if isinstance(value, bool):
                out[key] = int(value)
            elif isinstance(value, str | int | float):
                out[key] = value
            elif isinstance(value, Path):
                out[key] = str(value)
        return out


def make_spec(
    probe: str | Callable[..., float], options: Mapping[str, Any], run: Path | str | None = None
) -> ProbeSpec:
    """The ProbeSpec for a probe name (`BUILTIN_PROBES`) or a per-layer callable.

    run: the run probed; an ABX set named without ``corpus=`` is the run's corpus's.
    """
    options = dict(options)
    if callable(probe):
        name = getattr(probe, "__name__", type(probe).__name__).strip("<>")
        return ProbeSpec(name=name, function=_per_layer(probe), options=options)
    if probe not in BUILTIN_PROBES:
        raise ValueError(f"unknown probe {probe!r}; known: {sorted(BUILTIN_PROBES)} or a callable")
    function, references = BUILTIN_PROBES[probe]
    inputs = {}
    intervals = None
    if probe == "abx":
        n_boot, confidence = options.pop("bootstrap", 0), options.pop("confidence", 0.95)
        intervals = (int(n_boot), float(confidence)) if n_boot else None
        if "items" not in options:
            raise ValueError(
                "probe 'abx' needs items= (an item file, or an ABX set name with corpus=)"
            )
        # The item file decides the cells: its content (not its name) goes into the cache key.
        corpus = options.pop("corpus", None)
        items = _abx_items(options.pop("items"), corpus, run)
        options["items"] = str(items.resolve())
        inputs["items"] = _file_hash(items)
    return ProbeSpec(name=probe, function=function, options=options, references=references,
                     inputs=inputs, intervals=intervals)  # fmt: skip


def measure_checkpoint(
    checkpoint: Path, epoch: int, work: Mapping[str, tuple[ProbeSpec, list[int]]]
) -> dict[str, np.ndarray]:
    """Load `checkpoint` once and run each probe of `work` (name -> (spec, layers)) on it.

    Returns name -> [layers] values, or [layers, 3] (value, low, high) for a probe with intervals,
    or (ABX) the layers' ``LayerCells``.
    """
    import torch

    import training
    from analysis.gridding.abx_fast_path import forget_features

    model = training.load_pretrained(checkpoint)
    out = {}
    # Activations extracted for this checkpoint live in memory or in the scratch folder while its
    # probes run, then go: the grid keeps the numbers, and a run's activations at every epoch would
    # fill the disk.
    with torch.inference_mode(), scratch_folder() as scratch:
        try:
            out = _measure(model, checkpoint, epoch, work, Path(scratch))
        finally:
            forget_features()
    return out


def _measure(model, checkpoint, epoch, work, scratch: Path) -> dict[str, np.ndarray]:
    from analysis.gridding.abx_cells import LayerCells

    out = {}
    for name, (spec, layers) in work.items():
        values = spec.function(
            model,
            list(layers),
            checkpoint=Path(checkpoint),
            epoch=epoch,
            scratch=scratch,
            **spec.options,
        )
        if isinstance(values, LayerCells):  # ABX: the values and the cells' counts
            out[name] = values
            continue
        values = np.asarray(values, dtype=np.float64)
        values = values.reshape(-1) if values.ndim < 2 else values
        if values.shape not in ((len(layers),), (len(layers), 3)):
            raise ValueError(
                f"probe {name!r} returned {values.shape[0]} values for {len(layers)} layers"
            )
        out[name] = values
    return out


class scratch_folder:
    """A temporary folder ``<tmp>/sslvgs-grid-<pid>-*``, removed on any exit of the block.

    A process killed outright (SIGKILL, a power cut) cannot remove it: entering also removes the
    folders of processes that no longer exist (``clean_scratch``). The command line turns SIGTERM
    and SIGHUP into an exit, so ``kill`` takes this exit path too.
    """

    def __enter__(self) -> str:
        clean_scratch()
        self.path = tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-")
        return self.path

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def clean_scratch(root: str | Path | None = None) -> list[Path]:
    """Remove the scratch folders of grid processes that are gone; returns what was removed."""
    removed = []
    for path in Path(root or tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}*"):
        pid = path.name[len(SCRATCH_PREFIX) :].partition("-")[0]
        # Only folders named by this scheme are ours to judge: a name without a pid may belong to a
        # live process of another version, and is left alone.
        if not path.is_dir() or not pid.isdigit() or _alive(int(pid)):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _per_layer(function: Callable[..., float]) -> LayerFunction:
    """Wrap ``f(model, layer, **options) -> float`` into the grid's convention."""
    accepts = inspect.signature(function).parameters

    def per_layer(model, layers, *, checkpoint, epoch, scratch, **options):
        extra = {k: v for k, v in (("checkpoint", checkpoint), ("epoch", epoch)) if k in accepts}
        return [float(function(model, layer, **extra, **options)) for layer in layers]

    per_layer.wrapped = function  # type: ignore[attr-defined]
    return per_layer


# --- built-in probes ------------------------------------------------------------------------------


def _abx_items(items: str | Path, corpus: str | Path | None, run: Path | str | None) -> Path:
    """The item file of the abx probe's items=: a file or set folder as it is; a set's name in
    `corpus`, by default the run's recorded one (CorpusMissingError naming it when that is gone)."""
    path = Path(items)
    if path.is_file() or (path / "items.item").is_file():
        return _item_file(path, None)
    if corpus is None and run is not None:
        from training.run.directory import run_corpus

        corpus = run_corpus(run, check=True)
    return _item_file(items, corpus)


def _item_file(items: str | Path, corpus: str | Path | None) -> Path:
    """An item file, an ABX set directory, or the name of a set of `corpus` -> the item file."""
    from training.run.directory import abx_item_file

    return abx_item_file(items, corpus)


BUILTIN_PROBES: dict[str, tuple[LayerFunction, Callable | None]] = {
    "abx": (_abx, None),
    "phone": (_phone, None),
    "cka": (_cka, lambda checkpoint, epoch, options: [_reference_checkpoint(options["reference"])]),
    "cka_run": (_cka_run, lambda checkpoint, epoch, options: [_epoch_of(options["other"], epoch)]),
    "drift": (
        _drift,
        lambda checkpoint, epoch, options: [
            _drift_reference(checkpoint, options.get("reference_epoch"))
        ],
    ),
}
