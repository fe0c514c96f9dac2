"""``training.rundir``, the public name of training/run/directory.py: the same module under both names.

Kept so ``training.rundir.checkpoint_path(...)`` and ``from training.rundir import ...`` still work
(and a monkeypatch through either name patches the one module).
"""

import sys

from training.run import directory

sys.modules[__name__] = directory
