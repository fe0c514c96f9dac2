"""The built-in probes' functions (abx, phone, cka, cka_run, drift) in the grid's calling
convention (registry.py), and what they share: the scratch store of a checkpoint's activations,
the run's corpus, the reference checkpoints CKA and drift compare with.

Separate from the registry, which names them in `BUILTIN_PROBES` and keys their cells. Their
code is not hashed into the cache key: a change to what one of them measures must bump
`registry.BUILTIN_VERSION`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

__all__: list[str] = []  # nothing public: registry.py is their door


def _store(scratch: Path, model_id: str, source: str) -> Path:
    """The scratch activation store of a model on a source: shared by the probes of one checkpoint."""
    digest = hashlib.sha256(f"{model_id}|{source}".encode()).hexdigest()[:16]
    return scratch / f"activations-{digest}.zarr"


def _abx(model, layers, *, checkpoint, epoch, scratch, items, **options):
    """ABX error of each layer on an item file (the ABX fast path, abx_fast_path.py): one
    forward pass serves every layer and condition, the engine's structures are built once per process.
    Returns the layers' ``LayerCells`` (errors and per-cell counts, from which the grid computes
    intervals)."""
    from analysis.gridding.abx_fast_path import abx_layers

    return abx_layers(model, list(layers), checkpoint=checkpoint, items=items, cells=True,
                      **options)  # fmt: skip


def _phone(model, layers, *, checkpoint, epoch, scratch, corpus=None, split="train", **options):
    """Phone-probe accuracy of each layer (probes.phone_probe; default corpus: the run's)."""
    import probes

    corpus = corpus if corpus is not None else _run_corpus(checkpoint)
    result = probes.phone_probe(
        model, list(layers), corpus=corpus, split=split, progress=False,
        store=_store(scratch, str(checkpoint), f"{corpus}:{split}"), **options,
    )  # fmt: skip
    return [float(result.sel(layer=layer)) for layer in layers]


def _run_corpus(checkpoint: Path) -> Path:
    """The corpus recorded in the config.json of the run that holds `checkpoint`."""
    from training.run.directory import run_corpus

    corpus = run_corpus(checkpoint, check=True)
    if corpus is None:
        raise ValueError(f"{checkpoint}: its run's config.json names no corpus; pass corpus=")
    return corpus


def _cka(
    model, layers, *, checkpoint, epoch, scratch, reference, source=None, wavs=None, **options
):
    """Linear CKA of each layer with the same layer of a reference checkpoint, on the same audio
    (default: the corpus's captions ABX set; an item file's #files are found in `wavs`, default
    wavs/ beside it). The fixed reference's activations are cached beside its run
    (probes.extract's cache), so a drift grid extracts them once, not once per epoch."""
    reference = _reference_checkpoint(reference)
    audio = (_cka_source(source, checkpoint), wavs)
    return _same_layer_cka(model, layers, checkpoint, scratch, reference, None, audio, options)


def _same_layer_cka(model, layers, checkpoint, scratch, reference, reference_store, audio, options):
    """audio: (source, wavs) as probes.extract takes them."""
    import probes

    if isinstance(reference, Path) and reference.resolve() == Path(checkpoint).resolve():
        return [1.0] * len(layers)  # a checkpoint against itself (drift at the switch): CKA is 1
    source, wavs = audio
    store = _audio_store(scratch, checkpoint, audio)
    mine = probes.extract(model, source, "all", wavs=wavs, store=store, progress=False)
    theirs = probes.extract(
        reference, source, "all", wavs=wavs, store=reference_store, progress=False
    )
    return [
        float(
            probes.similarity(mine, theirs, [layer], layers_b=[layer], progress=False, **options)[
                0, 0
            ]
        )
        for layer in layers
    ]


def _audio_store(scratch: Path, checkpoint: Path, audio: tuple[Any, Any]) -> Path:
    """The scratch store of a checkpoint's activations on (source, wavs)."""
    source, wavs = audio
    return _store(scratch, str(checkpoint), f"{source}|{wavs}")


def _cka_source(source: Any, checkpoint: Path) -> Any:
    """The audio CKA compares on: `source`, or the captions ABX set of the run's corpus."""
    if source is not None:
        return source
    return _run_corpus(checkpoint) / "abx" / "captions" / "items.item"


def _cka_run(
    model, layers, *, checkpoint, epoch, scratch, other, source=None, wavs=None, **options
):
    """CKA of each layer with the same layer of another run's checkpoint at the same epoch (whose
    activations, needed once, stay in the scratch folder); source and wavs as for "cka"."""
    import training

    reference = _epoch_of(other, epoch)
    audio = (_cka_source(source, checkpoint), wavs)
    store = _audio_store(scratch, reference, audio)
    other_model = training.load_pretrained(reference)
    return _same_layer_cka(model, layers, checkpoint, scratch, other_model, store, audio, options)


def _drift(
    model,
    layers,
    *,
    checkpoint,
    epoch,
    scratch,
    reference_epoch=None,
    source=None,
    wavs=None,
    **options,
):
    """CKA of each layer with the same layer of the same run's checkpoint at `reference_epoch`
    (default: the run's stage switch, `analysis.sharing.switch_checkpoint`); source and wavs as for
    "cka"."""
    reference = _drift_reference(checkpoint, reference_epoch)
    audio = (_cka_source(source, checkpoint), wavs)
    return _same_layer_cka(model, layers, checkpoint, scratch, reference, None, audio, options)


def _drift_reference(checkpoint: Path, reference_epoch: int | None) -> Path:
    from analysis.runs import checkpoints, read_metrics, switch_epoch
    from training.run.directory import read_config, recorded_path, run_of

    run = run_of(checkpoint) or Path(checkpoint).parent
    if reference_epoch is None:
        # A run started from another run's checkpoint (a variant) switched there.
        init = read_config(run).get("init_from") if (run / "config.json").is_file() else None
        if isinstance(init, dict) and init.get("checkpoint"):
            return recorded_path(init["checkpoint"], run)
        reference_epoch = switch_epoch(read_metrics(run))
        if reference_epoch is None or reference_epoch not in checkpoints(run):
            raise ValueError(f"{run}: no stage switch with a checkpoint; pass reference_epoch=")
    return _epoch_of(run, int(reference_epoch))


def _reference_checkpoint(reference: str | Path) -> Path:
    """A checkpoint file; a run directory stands for its last checkpoint."""
    from training.run.directory import resolve_checkpoint

    return resolve_checkpoint(reference)


def _epoch_of(run: str | Path, epoch: int) -> Path:
    from training.run.directory import resolve_checkpoint

    return resolve_checkpoint(run, epoch)
