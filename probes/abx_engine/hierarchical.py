"""Two-level bootstrap of an ABX error: speakers, then the files within each drawn speaker.

The speaker bootstrap (``AbxResult.bootstrap``) treats a speaker's cells as fixed. But a speaker's
score also depends on which of its files (sentences) were recorded: on a few files per speaker that
variation can be as large as the speakers'. Here each resample draws the cells' speakers with
replacement, as the speaker bootstrap does (the same draws for the same seed), and then, for each
drawn copy of a speaker independently, all that speaker's files in the item set with replacement:

- an X item counts as many times as its file was drawn in that copy: a cell's error under a resample is
  sum_f w_f correct2_f / (2 sum_f w_f n_triplets_f) over its pieces (the cell's counts split by the
  file of its X items, ``FileCounts``); a cell none of whose X files was drawn does not exist;
- the A and B sets stay whole: they are what each query x is compared with (resampling them would put
  copies of an item into its own A set, at distance 0), as the recall bootstrap resamples queries and
  keeps the gallery;
- each copy of the X items' speaker (within speaker: the speaker; across: the X speaker) is a speaker of
  its own wherever it is averaged out; the A/B speaker of an across cell counts k times when drawn k
  times, as in the speaker bootstrap.

Averaging is the engine's (docs/abx.md, section 6), over the cells that exist. With one file per
speaker every file draw is that file, and the resamples are the speaker bootstrap's, draw for draw.
Random streams: speakers from ``default_rng(seed)`` (``result._draws``), files from
``default_rng([seed, 1])``, speaker by speaker (sorted), copy by copy; so two results on the same
items (two models, two conditions) get the same draws: the pairing.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np

from probes.abx_engine.collapse import CollapsePlan, _draws, _interval, chunk_rows

__all__ = ["FileCounts", "HierarchicalPlan", "file_weights", "bootstrap_files", "paired_files"]

UNIT = "speaker, file"
_COPY = "\x1f"  # speaker label + _COPY + copy number: one drawn copy of an X speaker


@dataclass(frozen=True)
class FileCounts:
    """A result's cells split by the file of their X items.

    cell: [P] row of the result's cells; file: [P] index into ``names``; correct2, n_triplets: [P]
    int64, which sum per cell to the cell's counts; names: [F] every file of the item set;
    speakers: [F] each file's speaker (None when the items name none, or a file has several).
    """

    cell: np.ndarray
    file: np.ndarray
    correct2: np.ndarray
    n_triplets: np.ndarray
    names: np.ndarray
    speakers: np.ndarray | None

    def with_correct2(self, correct2: np.ndarray) -> FileCounts:
        """The same pieces with other counts (another feature set on the same cells)."""
        return replace(self, correct2=np.asarray(correct2, np.int64))

    def same_pieces(self, other: FileCounts) -> bool:
        return all(
            np.array_equal(getattr(self, k), getattr(other, k))
            for k in ("cell", "file", "n_triplets", "names")
        )


def file_weights(
    speakers_of_files: np.ndarray, speakers: np.ndarray, multiplicity: np.ndarray, seed: int
) -> Iterator[np.ndarray]:
    """For each draw's multiplicities ([n_boot, S] of ``speakers``, sorted), the file weights of
    each drawn copy: [J, F] (J = the draw's largest multiplicity; row j weighs the files of every
    speaker drawn more than j times, 0 elsewhere)."""
    speakers_of_files = np.asarray(speakers_of_files).astype(str)
    files_of = [np.flatnonzero(speakers_of_files == s) for s in speakers]
    rng = np.random.default_rng([seed, 1])
    for m in multiplicity.astype(np.int64):
        weights = np.zeros((max(int(m.max()), 1), len(speakers_of_files)))
        for s, files in enumerate(files_of):
            for j in range(m[s]):
                drawn = rng.integers(0, len(files), len(files))
                weights[j, files] = np.bincount(drawn, minlength=len(files))
        yield weights


class HierarchicalPlan:
    """The collapse of a result's cells with each X speaker's copies as speakers of their own, for
    ``n_boot`` draws of ``seed``: built once per result structure, evaluated per draw."""

    def __init__(self, result, n_boot: int, seed: int, levels=None):
        files = result.files
        if files is None:
            raise ValueError(
                "this result has no per-file counts (subsampled, or built from a cell table): "
                "resample speakers only (files=False)"
            )
        if files.speakers is None:
            raise ValueError("resampling files needs each file's speaker (a `speaker` item column)")
        labels = result.labels
        owner = "speaker_x" if "speaker_x" in labels else "speaker"
        if owner not in labels:
            raise ValueError(f"cannot resample speakers: the cell labels are {labels}")
        x_speakers = np.asarray(result._columns[owner]).astype(str)[files.cell]
        if not (files.speakers[files.file].astype(str) == x_speakers).all():
            raise ValueError("a piece's file does not belong to its cell's X speaker")
        self.files = files
        # The speakers resampled: those of the cells, as the speaker bootstrap resamples them.
        resampled = [c for c in ("speaker", "speaker_x") if c in labels]
        self.speakers = np.unique(np.concatenate(
            [np.asarray(result._columns[c]).astype(str) for c in resampled]))  # fmt: skip
        self.multiplicity = _draws(len(self.speakers), n_boot, seed)
        self.seed = seed
        self.copies = max(int(self.multiplicity.max()), 1) if n_boot else 1
        self.n_cells = result.n_cells
        columns = result._columns
        self.labels = {c: np.asarray(columns[c]) for c in labels}  # what the plan was built on
        expanded = {c: np.tile(np.asarray(columns[c]).astype(str), self.copies) for c in labels}
        copy = np.repeat(np.arange(self.copies), self.n_cells).astype(str)
        expanded[owner] = np.char.add(np.char.add(expanded[owner], _COPY), copy)
        levels = result.condition.levels if levels is None else levels
        self.plan = CollapsePlan(expanded, labels, levels, "speaker")
        # Each unit label: (its speaker, its copy number; -1: a plain A/B speaker).
        parts = [str(u).rsplit(_COPY, 1) for u in self.plan.unit_labels]
        self.unit_speaker = np.searchsorted(self.speakers, [p[0] for p in parts])
        self.unit_copy = np.array([int(p[1]) if len(p) == 2 else -1 for p in parts], np.int64)

    def fits(self, result) -> bool:
        """Whether `result` has the cells and pieces this plan was built on (results of one
        ``Prepared`` share their plans)."""
        return (
            result.n_cells == self.n_cells
            and result.files is not None
            and self.files.same_pieces(result.files)
            and list(self.labels) == result.labels
            and all(np.array_equal(v, result._columns[c]) for c, v in self.labels.items())
        )

    def unit_multiplicity(self, m: np.ndarray) -> np.ndarray:
        """[..., unit labels] weights for speaker multiplicities m [..., S] (one draw or a stack):
        a copy label 1 if drawn, else 0; a plain (A/B) speaker label its multiplicity."""
        drawn = m[..., self.unit_speaker]
        return np.where(self.unit_copy < 0, drawn, (self.unit_copy < drawn).astype(np.float64))

    def values(self, correct2: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(errors, present) of every (copy, cell) row for per-piece counts and file weights [J, F]."""
        f = self.files
        errors = np.zeros(self.copies * self.n_cells)
        present = np.zeros(self.copies * self.n_cells, bool)
        for j in range(min(len(weights), self.copies)):
            w = weights[j][f.file]
            num = np.bincount(f.cell, weights=correct2 * w, minlength=self.n_cells)
            den = np.bincount(f.cell, weights=f.n_triplets * w, minlength=self.n_cells)
            rows = slice(j * self.n_cells, (j + 1) * self.n_cells)
            present[rows] = den > 0
            errors[rows] = 1.0 - np.divide(num, 2.0 * den, out=np.ones_like(num), where=den > 0)
        return errors, present

    def samples(self, *correct2: np.ndarray) -> np.ndarray:
        """[n_boot, len(correct2)] the collapsed error of each set of per-piece counts per draw."""
        out = np.empty((len(self.multiplicity), len(correct2)))
        draws = file_weights(self.files.speakers, self.speakers, self.multiplicity, self.seed)
        # As many draws at a time as evaluate_many takes at once: bounded memory. The per-draw
        # values stay a loop (a vectorised one measured slower: it pads every draw to all copies).
        rows = chunk_rows(self.copies * self.n_cells)
        for start in range(0, len(self.multiplicity), rows):
            m = self.multiplicity[start : start + rows]
            weights = list(itertools.islice(draws, len(m)))
            units = self.unit_multiplicity(m)
            for k, counts in enumerate(correct2):
                errors, present = zip(*(self.values(counts, w) for w in weights), strict=True)
                out[start : start + len(m), k] = self.plan.evaluate_many(
                    np.stack(errors), units, present=np.stack(present)
                )
        return out


def _plan(result, n_boot: int, seed: int, levels) -> HierarchicalPlan:
    key = ("files", n_boot, seed, None if levels is None else tuple(map(str, levels)))
    plan = result._plans.get(key)
    if plan is None or not plan.fits(result):
        plan = result._plans[key] = HierarchicalPlan(result, n_boot, seed, levels)
    return plan


def bootstrap_files(result, n_boot: int = 1000, confidence: float = 0.95, seed: int = 0,
                    levels=None):  # fmt: skip
    """The two-level percentile interval of ``result``'s error (module docstring)."""
    plan = _plan(result, n_boot, seed, levels)
    samples = plan.samples(result.files.correct2)[:, 0]
    return _interval(result.collapse(levels), samples, confidence, UNIT)


def paired_files(a, b, n_boot: int = 1000, confidence: float = 0.95, seed: int = 0):
    """error(a) - error(b) with the two-level bootstrap, the same draws weighting both."""
    if a.labels != b.labels or a.condition.levels != b.condition.levels:
        raise ValueError("paired difference needs two results of the same condition")
    same_cells = a.n_cells == b.n_cells and all(
        np.array_equal(a._columns[c], b._columns[c]) for c in a.labels
    )
    if not same_cells or b.files is None or a.files is None or not a.files.same_pieces(b.files):
        raise ValueError("paired difference needs the same cells and files (one item set)")
    plan = _plan(a, n_boot, seed, None)
    both = plan.samples(a.files.correct2, b.files.correct2)
    return _interval(float(a) - float(b), both[:, 0] - both[:, 1], confidence, UNIT)
