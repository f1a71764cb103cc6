"""Conformance cases for `box_and_whisker_filter`."""

from __future__ import annotations

import numpy as np

from ..._cases import ErrorCase, Known, OpCases, Sample, register

NOTES = {
    "INDEX_QUARTILES": "Q1 = sorted[⌊l/4⌋], Q3 = sorted[⌊3l/4⌋]: np.percentile interpolates other fences",
    "CLOSED_FENCES": "w = 0: the fences are Q1 and Q3 themselves, which stay (closed interval)",
    "NO_NEGATIVES": "l = 0 (one identity, or B = 1): empty outputs (the official code fails)",
    "ONE_PAIR": "l = 1: Q1 = Q3 = s, IQR = 0, s is kept",
    "ZERO_IQR": "IQR = 0: every similarity off the box is dropped, however close",
    "OUTLIER": "a near-duplicate cross-identity pair (a noisy label) is dropped at w = 1.5",
    "POSITIVES_EXCLUDED": "pairs with equal labels are never among the candidates",
    "SCALES": "rows at 1e-20 and 1e20: ‖x‖² under/overflows, the normalized directions do not",
}

# a drawn similarity closer than this to another one or to a fence is redrawn: float32
# rounding could reorder the pairs or move it across the fence (the edges test exact ties)
MARGIN = 1e-5

HAND = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.6, 0.8], [0.8, 0.6]])
# its l = 10 negative similarities (all labels distinct), sorted, with their pairs:
# −1 (0,2), −0.8 (2,4), −0.6 (2,3), 0 (0,1), 0 (1,2), 0.6 (0,3), 0.6 (1,4), 0.8 (0,4), 0.8 (1,3), 0.96 (3,4)


def _negatives(x, y):
    """s_n in float64, by the definition (independent of the reference)."""
    x_hat = x / np.linalg.norm(x, axis=1, keepdims=True)
    return np.array(
        [x_hat[i] @ x_hat[j] for i in range(len(y)) for j in range(i + 1, len(y)) if y[i] != y[j]]
    )


def _too_close(x, y, w):
    s = np.sort(_negatives(x, y))
    if s.size < 2:
        return False
    q1, q3 = s[s.size // 4], s[(3 * s.size) // 4]
    fences = np.array([q1 - w * (q3 - q1), q3 + w * (q3 - q1)])
    return bool(np.diff(s).min() < MARGIN or np.abs(s[:, None] - fences).min() < MARGIN)


def _random(rng, B, D):
    """Clustered identities at varied row scales, and one sample in three with a near-duplicate
    pair across identities (an outlier above the upper fence)."""
    K = int(rng.integers(1, B + 1))
    w = float(rng.uniform(0.25, 3.0))
    for _ in range(100):
        centers = rng.standard_normal((K, D))
        y = rng.integers(0, K, size=B)
        x = centers[y] + rng.uniform(0.3, 1.5) * rng.standard_normal((B, D))
        if B >= 2 and rng.uniform() < 1 / 3:
            i, j = rng.choice(B, size=2, replace=False)
            x[j] = x[i] + 0.01 * rng.standard_normal(D)
            y[j] = y[i] + 1
        x *= 10 ** rng.uniform(-3, 3, size=(B, 1))
        if not _too_close(x, y, w):
            break
    return Sample("random", (x, y), {"w": w})


def _edges():
    rng = np.random.default_rng(11)
    noisy = rng.standard_normal((8, 64))  # high dimension: negatives near 0
    noisy[7] = noisy[2] + 1e-3 * rng.standard_normal(64)  # same face, another label
    ones = np.array([[1.0, 0.0]] * 7 + [[0.0, 1.0]])
    spread = rng.standard_normal((6, 4))  # no two similarities within MARGIN (no ties to reorder)
    scales = np.array([[1e-20], [1e20], [1.0], [1e20], [1e-20], [3e-20]])
    return [
        Sample("hand example, w = 0.25", (HAND, np.arange(5)), {"w": 0.25}, flags=("INDEX_QUARTILES",)),
        Sample(
            "hand example, w = 0",
            (HAND, np.arange(5)),
            {"w": 0.0},
            flags=("INDEX_QUARTILES", "CLOSED_FENCES"),
            comment="[−0.6, 0, 0, 0.6, 0.6, 0.8, 0.8]; percentile fences [−0.45, 0.75] would drop 4 of them",
        ),
        Sample("hand example, w = 1.5: all kept", (HAND, np.arange(5)), {"w": 1.5}),
        Sample(
            "hand example, positives excluded",
            (HAND, np.array([0, 1, 0, 2, 2])),
            {"w": 0.0},
            flags=("POSITIVES_EXCLUDED",),
            comment="without (0,2) and (3,4): [−0.8, −0.6, 0, 0, 0.6, 0.6, 0.8, 0.8], Q1 = 0, Q3 = 0.8",
        ),
        Sample("one identity", (HAND, np.zeros(5, dtype=np.int64)), {"w": 1.5}, flags=("NO_NEGATIVES",)),
        Sample("B = 1", (np.array([[0.3, -0.4, 1.2]]), np.array([3])), {"w": 1.5}, flags=("NO_NEGATIVES",)),
        Sample("one negative pair", (HAND[:2] * 3.0, np.array([0, 1])), {"w": 0.0}, flags=("ONE_PAIR",)),
        Sample(
            "IQR = 0",
            (ones, np.arange(8)),
            {"w": 1.5},
            flags=("ZERO_IQR",),
            comment="21 similarities 1, 7 zeros: Q1 = sorted[7] = 1 = Q3; the zeros go",
        ),
        Sample(
            "near-duplicate across identities",
            (noisy, np.arange(8)),
            {"w": 1.5},
            flags=("OUTLIER",),
            comment="⟨x̂_2, x̂_7⟩ ≈ 1 lies above Q3 + 1.5·IQR",
        ),
        Sample(
            "rows at 1e-20 and 1e20",
            (spread * scales, np.arange(6)),
            {"w": 0.25},
            flags=("SCALES",),
            comment="the same as the unscaled rows",
        ),
    ]


def _errors():
    x = HAND.copy()
    x[3] = 0.0
    return [ErrorCase("a zero feature row", (x, np.arange(5)), {"w": 1.5}, match=r"'x'.*row 3 is all zeros")]


def _known():
    source = "by hand: the sorted similarities of HAND above, l = 10, Q1 = sorted[2], Q3 = sorted[7]"
    return [
        Known(
            "hand example, w = 0.25",
            (HAND, np.arange(5)),
            {"w": 0.25},
            values={
                "kept": [-0.8, -0.6, 0.0, 0.0, 0.6, 0.6, 0.8, 0.8, 0.96],
                "pairs": [[2, 4], [2, 3], [0, 1], [1, 2], [0, 3], [1, 4], [0, 4], [1, 3], [3, 4]],
            },
            source=source + ": Q1 = −0.6, Q3 = 0.8, IQR = 1.4, fences [−0.95, 1.15]",
            rtol=1e-15,
            atol=1e-16,
        ),
        Known(
            "hand example, w = 0",
            (HAND, np.arange(5)),
            {"w": 0.0},
            values={
                "kept": [-0.6, 0.0, 0.0, 0.6, 0.6, 0.8, 0.8],
                "pairs": [[2, 3], [0, 1], [1, 2], [0, 3], [1, 4], [0, 4], [1, 3]],
            },
            source=source + ": fences [Q1, Q3] = [−0.6, 0.8]",
            rtol=1e-15,
            atol=1e-16,
        ),
        Known(
            "positives excluded, w = 0",
            (HAND, np.array([0, 1, 0, 2, 2])),
            {"w": 0.0},
            values={
                "kept": [0.0, 0.0, 0.6, 0.6, 0.8, 0.8],
                "pairs": [[0, 1], [1, 2], [0, 3], [1, 4], [0, 4], [1, 3]],
            },
            source="by hand: l = 8 without (0,2) and (3,4); Q1 = sorted[2] = 0, Q3 = sorted[6] = 0.8",
            rtol=1e-15,
            atol=1e-16,
        ),
    ]


register(
    OpCases(
        "box_and_whisker_filter",
        dims={"B": (1, 10), "D": (2, 16)},
        random=_random,
        edges=_edges,
        errors=_errors,
        notes=NOTES,
        known=_known,
        defaults={"w": 1.5},
    )
)
