"""Everything that measures one model: activations, ABX, retrieval, similarity."""

__all__: list[str] = []

# Probes on trained models (issue 4). Loaded on first use, so that `import probes` and the CLI stay
# fast; no module is named like the function it exports, so `probes.recall` is always the function.
_PROBE_FUNCTIONS = {
    **dict.fromkeys(["extract", "cache_dir", "plan_batches"], "probes.activations"),
    **dict.fromkeys(
        ["open_store", "StoreWriter", "StoreMismatchError", "IncompleteStoreError"], "probes.store"
    ),
    **dict.fromkeys(
        ["LayeredModel", "as_layered_model", "resolve_layers", "state_checksum", "bounded_memory"],
        "probes.models",
    ),
    **dict.fromkeys(
        ["Source", "Utterance", "CorpusSplit", "AbxSet", "WavList", "as_source"], "probes.sources"
    ),
    **dict.fromkeys(
        ["activations_for", "layer_features", "corpus_of", "default_abx_set"], "probes.api"
    ),
    **dict.fromkeys(["recall", "recall_at_k", "retrieval_ranks", "DIRECTIONS"], "probes.retrieval"),
    **dict.fromkeys(["cka", "similarity"], "probes.kernel_alignment"),
    **dict.fromkeys(["phone_probe", "frame_labels"], "probes.phones"),
    "embed_split": "probes.embeddings",
}
__all__ += list(_PROBE_FUNCTIONS)


def __getattr__(name: str):
    if name in _PROBE_FUNCTIONS:
        import importlib

        value = getattr(importlib.import_module(_PROBE_FUNCTIONS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'probes' has no attribute {name!r}")


# The ABX engine (issue 6): a callable subpackage; its kernels load on first use.
from probes import abx  # noqa: E402

__all__ += ["abx"]
