"""The lowest smoothness cv any pacing can reach when a timeline's keyframes stay on their frames. No
pytest here: bench/pace_table.py prints it too."""

from __future__ import annotations

import numpy as np


def lowest_cv_with_keyframes_fixed(distances: list[float], keyframes: list[int]) -> float:
    """Keyframes stay on their frames, so each segment keeps its frame count and (nearly) its picture
    distance: the evenest a pacing can make the walk is every segment at its own mean distance.
    `distances`: the report's d_j; `keyframes`: the keyframes' frame numbers, the first 0."""
    d = np.asarray(distances, dtype=float)
    best = d.copy()
    for a, b in zip(keyframes, keyframes[1:] + [len(d)]):
        if b > a:
            best[a:b] = d[a:b].mean()
    return float(best.std() / best.mean())
