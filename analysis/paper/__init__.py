"""The paper's pipeline: its runs, its study of them, its claims and the report (docs/paper.md).

variants.py (the models and their run folders), plans.py and reproduction.py (the plans, and
running one: train and probe every run), study.py (collect every run's grids into one study),
evidence.py (paired comparisons over seeds), claim_specs.py and claims.py (the paper's claims as it
states them, and decided), tables.py, report.py and report_figures.py (what gets written).
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
