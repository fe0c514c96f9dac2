"""Everything that measures one model: activations, ABX, retrieval, similarity."""

__all__: list[str] = []

# Probes on trained models (issue 4). Loaded on first use, so that `import probes` and the CLI stay
# fast; no module is named like the function it exports, so `probes.recall` is always the function.
_PROBE_FUNCTIONS = {
    "extract": "probes.activations",
    "open_store": "probes.store",
    "recall": "probes.retrieval",
    "recall_at_k": "probes.retrieval",
    "retrieval_ranks": "probes.retrieval",
    "cka": "probes.kernel_alignment",
    "similarity": "probes.kernel_alignment",
}
__all__ += list(_PROBE_FUNCTIONS)


def __getattr__(name: str):
    if name in _PROBE_FUNCTIONS:
        import importlib

        value = getattr(importlib.import_module(_PROBE_FUNCTIONS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'probes' has no attribute {name!r}")
