"""Models made elsewhere, read without running their pickles: Hugging Face transformers models,
fairseq wav2vec 2.0 / HuBERT checkpoints, the paper's VGS+ / FaST-VGS+ bundles, and folders of
checkpoints as training trajectories (docs/models.md).

Names load on first use (lazy_loader, SPEC 1): nothing here imports transformers until an HF model is
asked for.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
