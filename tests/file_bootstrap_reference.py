"""A slow, obviously-correct two-level bootstrap: each resample written out as the data it stands for.

For each draw: the cells' speakers are drawn with replacement, then for each drawn copy of a speaker
all its files with replacement (the random streams docs/abx.md documents: speakers from ``default_rng(seed)``, one
``integers(0, S, S)`` per draw; files from ``default_rng([seed, 1])``, speaker by speaker in sorted
order, copy by copy). Every copy becomes a speaker of its own, named "<speaker>#<copy>", in both roles
(A/B speaker and X speaker); a cell of copies is kept when some file of its X items was drawn, its
error the file-weighted counts; then the cells are averaged with the plain level-by-level means of
docs/abx.md. It shares no code with probes/abx_engine/hierarchical.py (no collapse plan, no
multiplicities) and exists to check it. Use it on a few dozen cells.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

__all__ = ["reference_file_samples"]


def _average(rows: list[dict], labels: list[str], levels) -> float:
    """Average ``rows`` ({label: value, "error": e}) level by level, X labels with the first level."""
    key = [c for c in labels if not (c.endswith("_x") and c[:-2] in labels)]
    for level in levels:
        level = (level,) if isinstance(level, str) else tuple(level)
        key = [c for c in key if c not in level]
        groups: dict[tuple, list[float]] = {}
        for row in rows:
            groups.setdefault(tuple(row[c] for c in key), []).append(row["error"])
        rows = [dict(zip(key, k, strict=True)) | {"error": sum(v) / len(v)}
                for k, v in groups.items()]  # fmt: skip
    return sum(r["error"] for r in rows) / len(rows) if rows else float("nan")


def reference_file_samples(result, n_boot: int, seed: int = 0) -> np.ndarray:
    """[n_boot] the error of each two-level resample of ``result`` (an AbxResult with ``files``)."""
    files = result.files
    labels = result.labels
    cells = result.cells
    across = "speaker_x" in labels
    speakers = sorted({str(s) for c in ("speaker", "speaker_x") if c in labels for s in cells[c]})
    files_of = {s: [i for i, who in enumerate(files.speakers) if who == s] for s in speakers}
    pieces: dict[int, list[tuple[int, int, int]]] = {}
    for cell, file, correct2, triplets in zip(files.cell, files.file, files.correct2,
                                              files.n_triplets, strict=True):  # fmt: skip
        pieces.setdefault(int(cell), []).append((int(file), int(correct2), int(triplets)))
    speaker_rng, file_rng = np.random.default_rng(seed), np.random.default_rng([seed, 1])
    samples = []
    for _ in range(n_boot):
        drawn = Counter(speaker_rng.integers(0, len(speakers), len(speakers)).tolist())
        weights = {}
        for s, speaker in enumerate(speakers):
            for copy in range(drawn[s]):
                own = files_of[speaker]
                weights[speaker, copy] = Counter(
                    own[k] for k in file_rng.integers(0, len(own), len(own)).tolist()
                )
        rows = []
        for index, cell in enumerate(cells.to_dict("records")):
            x_speaker = cell["speaker_x"] if across else cell["speaker"]
            for x_copy in range(drawn[speakers.index(x_speaker)]):
                w = weights[x_speaker, x_copy]
                num = sum(w[f] * c for f, c, _ in pieces.get(index, []))
                den = sum(w[f] * t for f, _, t in pieces.get(index, []))
                if den == 0:  # none of its X items' files was drawn: the cell does not exist
                    continue
                row = {c: cell[c] for c in labels} | {"error": 1 - num / (2 * den)}
                if not across:
                    rows.append(row | {"speaker": f"{x_speaker}#{x_copy}"})
                    continue
                for ab_copy in range(drawn[speakers.index(cell["speaker"])]):
                    rows.append(row | {"speaker": f"{cell['speaker']}#{ab_copy}",
                                       "speaker_x": f"{x_speaker}#{x_copy}"})  # fmt: skip
        samples.append(_average(rows, labels, result.condition.levels))
    return np.array(samples)
