"""The front doors' public names, pinned: moving a module between rooms must not take a name away.

Each name of `training`, `probes`, `analysis` (and the `training.data` / `training.pretrained` doors)
must still be listed and must resolve (lazy_loader loads it on first use). The three package doors
hold at most 25 names each, grouped by kind in their `__init__.pyi` (submodules, functions users call,
types, errors); a name that left a door still loads from its module.
"""

from __future__ import annotations

import importlib

import pytest

PUBLIC = {
    "training": [
        # submodules
        "corpus",
        "data",
        "pretrained",
        "rundir",
        # functions users call
        "build_corpus",
        "checkpoint_id",
        "from_torchaudio",
        "load_model",
        "load_pretrained",
        "model_identity",
        "parse_schedule",
        "preset",
        "train",
        "trajectory",
        # the model, its configuration, the corpus's variation
        "ModelConfig",
        "SSLVGS",
        "TrainConfig",
        "Variation",
        # constants
        "PAPER_SCHEDULES",
        "PRESETS",
        # errors
        "CheckpointError",
        "RunConfigError",
        "RunNotFoundError",
        "ScheduleError",
    ],
    "probes": [
        # submodules
        "abx_engine",
        # functions users call
        "abx",
        "as_layered_model",
        "as_source",
        "cka",
        "clear_caches",
        "embed_split",
        "extract",
        "layer_features",
        "list_caches",
        "open_store",
        "phone_probe",
        "recall",
        "similarity",
        # types
        "Context",
        "Distance",
        "Encoder",
        "LayeredModel",
        "Layers",
        "Source",
        "Speaker",
        "Utterance",
        # errors
        "CorruptStoreError",
        "IncompleteStoreError",
        "StoreMismatchError",
    ],
    "analysis": [
        # submodules
        "gridding",
        "paper",
        "plots",
        # functions users call
        "checkpoints",
        "collect",
        "drift",
        "forgetting",
        "forgetting_table",
        "grid",
        "grids",
        "paired_abx",
        "paired_recall",
        "read_metrics",
        "reproduce",
        "reproduction_settings",
        "similarity_between_runs",
        "stack",
        "switch_epoch",
        "write_report",
        # result types
        "Claim",
        "Comparison",
        "Metric",
        "Plan",
        "Study",
        # errors
        "RunNotFoundError",
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


# Names that left a front door (issue #21): each is still importable from the module named here.
MOVED = {
    "training": {
        "training.data": [
            "CaptionDataset",
            "RegionFeatures",
            "collate_captions",
            "load_split",
            "read_alignment",
            "read_items",
            "read_wav",
            "write_items",
        ],
        "training.corpus": ["DEFAULT_IMAGES", "DEFAULT_REGION_DIM"],
        "training.corpus.espeak": ["Synthesizer", "Voice", "text_to_phones"],
        "training.pretrained.torchaudio_models": ["import_torchaudio_wav2vec2"],
    },
    "probes": {
        "probes.activations": ["activations_for", "cache_dir", "plan_batches"],
        "probes.models": [
            "bounded_memory",
            "corpus_of",
            "default_abx_set",
            "resolve_layers",
            "state_checksum",
        ],
        "probes.phones": ["frame_labels"],
        "probes.retrieval": ["DIRECTIONS", "recall_at_k", "retrieval_ranks"],
        "probes.sources": ["abx_set", "audio_folder", "corpus_split", "wav_list"],
        "probes.store": ["StoreWriter"],
    },
    "analysis": {
        "analysis.gridding": [
            "BUILTIN_PROBES",
            "ProbeSpec",
            "cache_path",
            "make_spec",
            "measure_checkpoint",
            "num_layers",
        ],
        "analysis.metric_names": ["METRICS", "metric", "recall_key"],
        "analysis.forgetting_metrics": ["higher_is_better", "is_tracked_metric", "metric_series"],
        "analysis.paper.claims": ["CLAIMS", "claims_markdown", "claims_table", "decide"],
        "analysis.paper.evidence": ["Ranks", "combine_conditions", "combine_seeds", "verdict"],
        "analysis.paper.report": ["forgetting_tables", "report_runs", "sharing_table"],
        "analysis.paper.reproduction": ["PLANS", "run_path"],
        "analysis.paper.study": [
            "RunSpec",
            "abx_conditions",
            "final_recall",
            "probe_epochs",
            "recall_record",
        ],
        "analysis.paper.tables": [
            "best_layer",
            "best_layer_interval",
            "best_layer_table",
            "recall_table",
            "summarise_seeds",
            "to_markdown",
            "write_table",
        ],
        "analysis.paper.variants": ["MODELS", "run_dir_name", "variant_name"],
        "analysis.runs": ["run_name"],
        "analysis.sharing": ["switch_checkpoint"],
    },
}
DOORS = ("training", "probes", "analysis")


@pytest.mark.parametrize("package", sorted(PUBLIC))
def test_every_public_name_is_still_there(package):
    module = importlib.import_module(package)
    assert set(PUBLIC[package]) <= set(module.__all__)
    assert set(PUBLIC[package]) <= set(dir(module))


@pytest.mark.parametrize("package", DOORS)
def test_a_front_door_lists_at_most_25_names_and_no_others(package):
    module = importlib.import_module(package)
    assert sorted(module.__all__) == sorted(PUBLIC[package])
    assert len(module.__all__) <= 25


@pytest.mark.parametrize(
    ("module", "name"),
    [
        (module, name)
        for moved in MOVED.values()
        for module, names in moved.items()
        for name in names
    ],
)
def test_a_name_that_left_its_front_door_loads_from_its_module(module, name):
    package = module.partition(".")[0]
    assert name not in importlib.import_module(package).__all__
    assert getattr(importlib.import_module(module), name) is not None


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


def test_the_old_camelcase_source_builders_warn_and_build_the_same(tmp_path):
    import probes.sources as sources

    (tmp_path / "a.wav").write_bytes(b"")
    for old, new in [
        ("CorpusSplit", "corpus_split"),
        ("AbxSet", "abx_set"),
        ("WavList", "wav_list"),
        ("AudioFolder", "audio_folder"),
    ]:
        assert old not in sources.__all__ and new in sources.__all__
        assert getattr(sources, old).__wrapped__ is getattr(sources, new)
    with pytest.warns(DeprecationWarning, match="use probes.sources.wav_list"):
        old = sources.WavList([tmp_path / "a.wav"])
    assert old.utterances == sources.wav_list([tmp_path / "a.wav"]).utterances
