"""Conformance cases for SimCore's `simcore_sampling`.

A selection compared on outputs: the indices exactly, the round values to rounding. The
similarities are summed over the features in order in every backend, so exact ties
(duplicated open-set samples) are exact everywhere and go to the lowest index.
"""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, OpCases, Sample, register

NOTES = {
    "TIES": "duplicated open-set samples: equal similarities, the lowest index is picked first",
    "SHARED_PICK": "two centroids pick the same sample in one round: it is selected once",
    "TRUNCATED": "the last round overshoots the budget: the picks with the smallest keys are kept",
    "BUDGET_ABOVE_N": "budget > N: every open-set sample is selected (the official loop raises there)",
    "STOP": "the stopping rule: a round below stop_thresh·f_patience ends the sampling, its picks dropped",
    "NEGATIVE_START": "f < 0 before round `patience`: the official threshold 0 stops at once",
    "ONE_CENTROID": "K = 1: the top-budget nearest neighbours of the centroid direction",
    "SCALE": "features scaled by 1e±150: cosines are scale-free",
}


def _random(rng, N, K, D):
    z = rng.standard_normal((N, D)) * float(rng.choice([0.1, 1.0, 30.0]))
    if rng.random() < 0.3:
        z += 1.5  # a common direction: similarities near 1
    if N > 2 and rng.random() < 0.3:
        z[N - 1] = z[0]  # an exact tie
    c = rng.standard_normal((K, D))
    keys = rng.random(N)
    kwargs = {"budget": int(rng.integers(1, N + 3))}
    if rng.random() < 0.4:
        kwargs.update(
            stop=True, patience=int(rng.integers(1, 4)), stop_thresh=float(rng.choice([0.5, 0.95, 1.2]))
        )
    return Sample("random", (z, c, keys), kwargs)


def _edges():
    rng = np.random.default_rng(157)
    z_doc = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0]])
    c_doc = np.array([[1.0, 0.1], [0.1, 1.0]])
    base = rng.standard_normal((4, 3))
    duplicated = np.vstack([base, base])
    return [
        Sample(
            "known value (the doctest)",
            (z_doc, c_doc, np.zeros(4)),
            {"budget": 3},
            flags=("SHARED_PICK",),
            comment="round 1: [0, 1]; round 2: both centroids pick 2 → [0, 1, 2]",
        ),
        Sample(
            "truncated last round",
            (z_doc, np.array([[1.0, 0.1], [0.1, 1.0], [-1.0, 0.0]]), np.array([0.9, 0.5, 0.1, 0.3])),
            {"budget": 2},
            flags=("TRUNCATED",),
            comment="round 1 picks 0, 1, 3; keys 0.9, 0.5, 0.3 keep 1 and 3",
        ),
        Sample(
            "duplicated samples",
            (duplicated, rng.standard_normal((3, 3)), rng.random(8)),
            {"budget": 5},
            flags=("TIES",),
        ),
        Sample(
            "budget above N",
            (rng.standard_normal((5, 2)), rng.standard_normal((2, 2)), rng.random(5)),
            {"budget": 50},
            flags=("BUDGET_ABOVE_N",),
        ),
        Sample(
            "one centroid",
            (rng.standard_normal((7, 3)), rng.standard_normal((1, 3)), rng.random(7)),
            {"budget": 4},
            flags=("ONE_CENTROID",),
        ),
        Sample(
            "stopping rule",
            (
                np.array([[1.0, 0.0], [0.9, 0.1], [0.5, 0.5], [0.0, 1.0], [-1.0, 0.2]]),
                np.array([[1.0, 0.0]]),
                np.zeros(5),
            ),
            {"budget": 5, "stop": True, "patience": 1, "stop_thresh": 0.95},
            flags=("STOP",),
            comment="f = 1, 0.994, 0.707: the third round (< 0.95) stops: [0, 1]",
        ),
        Sample(
            "negative first round with stop",
            (np.array([[-1.0, 0.0], [-1.0, 0.5]]), np.array([[1.0, 0.0]]), np.zeros(2)),
            {"budget": 2, "stop": True},
            flags=("STOP", "NEGATIVE_START"),
            comment="f_1 = −0.894 < 0: nothing selected",
        ),
        Sample(
            "tiny scale",
            (rng.standard_normal((6, 3)) * 1e-150, rng.standard_normal((2, 3)) * 1e150, rng.random(6)),
            {"budget": 4},
            flags=("SCALE",),
            dtypes=("float64",),
        ),
    ]


def _errors():
    return [
        ErrorCase(
            "zero open-set row",
            (np.array([[1.0, 0.0], [0.0, 0.0]]), np.ones((1, 2)), np.zeros(2)),
            {"budget": 1},
            match=r"'z'.*row 1 with",
        ),
        ErrorCase(
            "zero centroid",
            (np.ones((2, 2)), np.zeros((1, 2)), np.zeros(2)),
            {"budget": 1},
            match=r"'c'.*row 0 with",
        ),
        ErrorCase(
            "a key of 1",
            (np.ones((2, 2)), np.ones((1, 2)), np.array([0.0, 1.0])),
            {"budget": 1},
            match=r"'keys'.*\[0, 1\)",
        ),
    ]


def _torch(torch, args, kwargs, cotangent):
    """The same selection in PyTorch: F.normalize of both, S = u @ v.T in float64, every column
    sorted with torch.sort(descending=True, stable=True), the round-robin walk in Python
    (a selection: forward only)."""
    z = torch.from_numpy(args[0]).to(torch.float64)
    c = torch.from_numpy(args[1]).to(torch.float64)
    keys = torch.from_numpy(args[2]).to(torch.float64)
    budget = kwargs["budget"]
    stop, stop_thresh, patience = (
        kwargs.get("stop", False),
        kwargs.get("stop_thresh", 0.95),
        kwargs.get("patience", 20),
    )

    def step():
        with torch.no_grad():
            u = torch.nn.functional.normalize(z, dim=1)
            v = torch.nn.functional.normalize(c, dim=1)
            sim = u @ v.T
            order = torch.sort(sim, dim=0, descending=True, stable=True).indices.T.contiguous().tolist()
            count, centroids = sim.shape
            target = min(budget, count)
            selected, pointer = set(), [0] * centroids
            indices, values, threshold, rounds = [], [], 0.0, 0
            while len(indices) < target:
                rounds += 1
                picks, value = [], 0.0
                for k in range(centroids):
                    while order[k][pointer[k]] in selected:
                        pointer[k] += 1
                    o = order[k][pointer[k]]
                    pointer[k] += 1
                    if o not in picks:
                        picks.append(o)
                    value += float(sim[o, k]) / centroids
                values.append(value)
                if rounds == patience:
                    threshold = value * stop_thresh
                if stop and value < threshold:
                    break
                if len(indices) + len(picks) > target:
                    chosen = torch.sort(keys[picks], stable=True).indices[: target - len(indices)]
                    picks = [picks[a] for a in sorted(chosen.tolist())]
                selected.update(picks)
                indices.extend(picks)
            return torch.tensor(indices, dtype=torch.int64), torch.tensor(values, dtype=z.dtype)

    return step


register(
    OpCases(
        "simcore_sampling",
        dims={"N": (1, 14), "K": (1, 5), "D": (1, 5)},
        random=_random,
        edges=_edges,
        errors=_errors,
        defaults={"stop": False, "stop_thresh": 0.95, "patience": 20},
        notes=NOTES,
        bench=Bench(
            sizes={"N": 20000, "K": 100, "D": 128},
            kwargs={"budget": 2000},
            torch=_torch,
            torch_label="F.normalize, S = u @ v.T (float64), torch.sort(descending, stable) per column, the "
            "round-robin walk in Python; forward only",
        ),
    )
)
