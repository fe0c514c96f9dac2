"""What a run is: its configuration, its directory, its checkpoints and how it resumes.

config.py (ModelConfig, TrainConfig, the presets), request.py (a run's config.json and the rules a
resume follows), directory.py (the run directory's files, docs/formats.md), checkpoints.py
(checkpoint files), resume.py (what a checkpoint holds and restoring from it). The trainer uses all
five; probes and analysis read runs through directory.py and checkpoints.py.
"""
