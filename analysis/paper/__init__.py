"""The paper's pipeline: its runs, its study of them, its claims and the report (docs/paper.md).

variants.py (the models and their run folders), reproduction.py (the plans: train and probe every
run), study.py (collect every run's grids into one study), evidence.py (paired comparisons over
seeds), claims.py (the paper's claims, decided), tables.py and report.py (what gets written).
"""
