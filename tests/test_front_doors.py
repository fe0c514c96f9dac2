"""The front doors' public names, pinned: moving a module between rooms must not take a name away.

Each name of `training`, `probes`, `analysis` (and the `training.data` / `training.pretrained` doors)
must still be listed and must resolve (lazy_loader loads it on first use).
"""

from __future__ import annotations

import importlib

import pytest

PUBLIC = {
    "training": [
        "CaptionDataset",
        "CheckpointError",
        "DEFAULT_IMAGES",
        "DEFAULT_REGION_DIM",
        "ModelConfig",
        "PAPER_SCHEDULES",
        "PRESETS",
        "RegionFeatures",
        "RunConfigError",
        "RunNotFoundError",
        "SSLVGS",
        "ScheduleError",
        "Synthesizer",
        "TrainConfig",
        "Variation",
        "Voice",
        "build_corpus",
        "checkpoint_id",
        "collate_captions",
        "data",
        "from_torchaudio",
        "import_torchaudio_wav2vec2",
        "load_model",
        "load_pretrained",
        "load_split",
        "model_identity",
        "parse_schedule",
        "preset",
        "pretrained",
        "read_alignment",
        "read_items",
        "read_wav",
        "rundir",
        "text_to_phones",
        "train",
        "trajectory",
        "write_items",
    ],
    "probes": [
        "AbxSet",
        "AudioFolder",
        "Context",
        "CorpusSplit",
        "CorruptStoreError",
        "DIRECTIONS",
        "Distance",
        "IncompleteStoreError",
        "LayeredModel",
        "Layers",
        "Source",
        "Speaker",
        "StoreMismatchError",
        "StoreWriter",
        "Utterance",
        "WavList",
        "abx",
        "abx_engine",
        "activations_for",
        "as_layered_model",
        "as_source",
        "bounded_memory",
        "cache_dir",
        "cka",
        "clear_caches",
        "corpus_of",
        "default_abx_set",
        "embed_split",
        "extract",
        "frame_labels",
        "layer_features",
        "list_caches",
        "open_store",
        "phone_probe",
        "plan_batches",
        "recall",
        "recall_at_k",
        "resolve_layers",
        "retrieval_ranks",
        "similarity",
        "state_checksum",
    ],
    "analysis": [
        "BUILTIN_PROBES",
        "CLAIMS",
        "Claim",
        "Comparison",
        "METRICS",
        "MODELS",
        "Metric",
        "PLANS",
        "Plan",
        "ProbeSpec",
        "Ranks",
        "RunNotFoundError",
        "RunSpec",
        "Study",
        "abx_conditions",
        "best_layer",
        "best_layer_interval",
        "best_layer_table",
        "cache_path",
        "checkpoints",
        "claims_markdown",
        "claims_table",
        "collect",
        "combine_conditions",
        "combine_seeds",
        "decide",
        "drift",
        "final_recall",
        "forgetting",
        "forgetting_table",
        "forgetting_tables",
        "grid",
        "grids",
        "higher_is_better",
        "is_tracked_metric",
        "make_spec",
        "measure_checkpoint",
        "metric",
        "metric_series",
        "num_layers",
        "paired_abx",
        "paired_recall",
        "plots",
        "probe_epochs",
        "read_metrics",
        "recall_key",
        "recall_record",
        "recall_table",
        "report_runs",
        "reproduce",
        "run_dir_name",
        "run_name",
        "run_path",
        "sharing_table",
        "similarity_between_runs",
        "stack",
        "summarise_seeds",
        "switch_checkpoint",
        "switch_epoch",
        "to_markdown",
        "variant_name",
        "verdict",
        "write_report",
        "write_table",
    ],
    "training.pretrained": [
        "BundleError",
        "FairseqCheckpointError",
        "HFEncoder",
        "HFModelError",
        "TorchaudioEncoder",
        "UnsafePickleError",
        "bundle_config",
        "checkpoint_index",
        "fairseq_to_torchaudio",
        "is_hf_directory",
        "is_hf_model",
        "load_bundle",
        "load_fairseq",
        "load_hf",
        "load_pretrained",
        "model_identity",
        "pretrained_kind",
        "read_namespace",
        "torch_load",
        "trajectory",
        "trajectory_root",
        "wrap_hf",
    ],
    "training.data": [
        "AlignmentError",
        "AmbiguousFileError",
        "CaptionDataset",
        "ItemColumns",
        "ItemFileError",
        "RegionError",
        "RegionFeatures",
        "SpokenCocoError",
        "WavError",
        "collate_captions",
        "find_audio",
        "load_split",
        "open_regions",
        "read_alignment",
        "read_item_columns",
        "read_items",
        "read_wav",
        "resample",
        "split_path",
        "write_alignment",
        "write_items",
    ],
}


@pytest.mark.parametrize("package", sorted(PUBLIC))
def test_every_public_name_is_still_there(package):
    module = importlib.import_module(package)
    assert set(PUBLIC[package]) <= set(module.__all__)
    assert set(PUBLIC[package]) <= set(dir(module))


@pytest.mark.parametrize(
    ("package", "name"), [(package, name) for package, names in PUBLIC.items() for name in names]
)
def test_every_public_name_resolves(package, name):
    assert getattr(importlib.import_module(package), name) is not None


def test_a_room_does_not_hide_a_function():
    # Importing a subpackage sets it as an attribute of its parent: a room named like a public
    # function (analysis.grids, analysis.grid) would replace the function once it is imported.
    import analysis
    import analysis.gridding.driver  # noqa: F401
    import analysis.paper.study  # noqa: F401
    import training
    import training.corpus.build  # noqa: F401
    import training.run.directory  # noqa: F401

    assert callable(analysis.grid) and callable(analysis.grids) and callable(analysis.stack)
    assert callable(training.build_corpus) and training.rundir is training.run.directory
