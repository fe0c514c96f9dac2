"""The paper's pipeline: its runs, its study of them, its claims and the report (docs/paper.md).

variants.py (the models and their run folders), reproduction.py (the plans: train and probe every
run), study.py (collect every run's grids into one study), evidence.py (paired comparisons over
seeds), claims.py (the paper's claims, decided), tables.py and report.py (what gets written).
"""

import lazy_loader as _lazy

# `analysis.paper.claims` and its siblings load on first use, like the rest of `analysis`.
__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submodules=[
        "claims",
        "evidence",
        "report",
        "reproduction",
        "settings",
        "study",
        "tables",
        "variants",
    ],
)
