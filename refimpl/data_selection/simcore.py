"""SimCore's round-robin coreset of an open set around the target's centroids
(Coreset Sampling from Open-Set for Fine-Grained Self-Supervised Learning)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..authoring import ArgumentError, Flag, FloatArray, IntScalar, Paper, RealScalar, op
from .dataset_quantization import unit_rows

__all__ = ["PAPER", "cosine_similarities", "round_robin_greedy", "simcore_sampling"]

PAPER = Paper(
    "Coreset Sampling from Open-Set for Fine-Grained Self-Supervised Learning",
    arxiv="2303.11101",
    year=2023,
    code="sungnyun/openssl-simcore",
)


# -- shared arithmetic (the Numba and CuPy modules repeat it operation for operation) --------------
def cosine_similarities(z: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``S[o, k] = ⟨z_o/‖z_o‖, c_k/‖c_k‖⟩`` (N, K) in float64, summed over the features in order.

    One feature at a time (never through BLAS): every entry gets the same operations, so
    duplicated open-set samples have bitwise equal similarities (their tie is exact and goes
    to the lowest index) and every backend reproduces the matrix bit for bit.
    """
    u, v = unit_rows(z), unit_rows(c)
    similarities = np.zeros((u.shape[0], v.shape[0]))
    for d in range(u.shape[1]):
        similarities += u[:, d, None] * v[None, :, d]
    return similarities


def round_robin_greedy(similarities, order, keys, budget, stop, stop_thresh, patience):
    """SimCore's greedy given ``S`` (N, K) and every column's descending order (N, K).

    Returns ``(indices, round_values)`` as Python lists. ``order[:, k]`` lists the open set
    by decreasing ``S[:, k]`` (ties: the lower index first); a pointer per centroid walks it,
    skipping samples selected in earlier rounds (the official ``deque.popleft`` loop).
    """
    count, centroids = similarities.shape
    target = min(int(budget), count)
    selected = np.zeros(count, dtype=bool)
    round_of = np.zeros(count, dtype=np.int64)  # the last round that picked a sample (0: none)
    pointer = np.zeros(centroids, dtype=np.int64)
    indices: list[int] = []
    round_values: list[float] = []
    threshold = 0.0  # the official `threshold = 0` until round `patience`
    rounds = 0
    while len(indices) < target:
        rounds += 1
        picks = []  # this round's distinct picks, in pick order
        value = 0.0
        for k in range(centroids):
            while selected[order[pointer[k], k]]:
                pointer[k] += 1
            o = int(order[pointer[k], k])
            pointer[k] += 1
            if round_of[o] != rounds:  # two centroids may pick the same sample: kept once
                round_of[o] = rounds
                picks.append(o)
            value += similarities[o, k] / centroids  # f = (1/K) Σ_k S[pick_k, k], in k order
        round_values.append(value)
        if rounds == patience:
            threshold = value * stop_thresh
        if stop and value < threshold:
            break  # this round's picks are not taken
        if len(indices) + len(picks) > target:  # the last round: a uniform subset by keys
            keep = target - len(indices)
            chosen = np.argsort(keys[picks], kind="stable")[:keep]  # ties: the earlier pick
            picks = [picks[a] for a in np.sort(chosen)]  # in pick order
        selected[picks] = True
        indices.extend(picks)
    return indices, round_values


def _check(arguments: Mapping[str, Any]) -> None:
    for name in ("z", "c"):
        squared = (np.asarray(arguments[name], dtype=np.float64) ** 2).sum(axis=1)
        bad = (squared == 0) | ~np.isfinite(squared)
        if bool(np.any(bad)):
            row = int(np.argmax(bad))
            raise ArgumentError(
                name,
                "rows with a non-zero norm whose float64 square is finite and > 0 (a cosine needs it)",
                f"row {row} with ‖·‖² = {squared[row]}",
            )
    keys = np.asarray(arguments["keys"])
    if bool(np.any((keys < 0) | (keys >= 1))):
        raise ArgumentError("keys", "uniform draws in [0, 1)", f"values in [{keys.min()}, {keys.max()}]")


@op(
    inputs={
        "z": FloatArray("N", "D"),
        "c": FloatArray("K", "D"),
        "keys": FloatArray("N"),
        "budget": IntScalar(1),
        "stop": Flag(),
        "stop_thresh": RealScalar(),
        "patience": IntScalar(1),
    },
    outputs=("indices", "round_values"),
    check=_check,
)
def simcore_sampling(z, c, keys, *, budget, stop=False, stop_thresh=0.95, patience=20):
    r"""SimCore: the open-set samples nearest the target's k-means centroids, round-robin.

    To pretrain on a small fine-grained target set plus a large open set, SimCore adds only
    the open-set samples that look like the target: the target's features are clustered,
    and every centroid in turn takes its most similar remaining open-set sample, round after
    round, so that every mode of the target is covered (a greedy for the facility-location
    objective ``Σ_k max_{o∈S} ⟨z_o, c_k⟩``). With ``stop``, rounds end once the picks become
    markedly less similar than they were at round ``patience``.

    Forward. ``u_o = z_o/‖z_o‖``, ``v_k = c_k/‖c_k‖`` (the official ``F.normalize`` of both)
    and ``S[o, k] = ⟨u_o, v_k⟩`` (cosine; summed over the features in order). Let
    ``target = min(budget, N)``; every column is sorted once by decreasing S (ties: the
    lower index first). Rounds r = 1, 2, ... while fewer than ``target`` are selected:

        pick_k  = the most similar sample to v_k not selected in an earlier round
                  (k = 0, ..., K − 1; two centroids may pick the same sample in a round:
                  it counts once — the official code checks only earlier rounds)
        f_r     = Σ_k S[pick_k, k] / K                   (accumulated in k order)
        θ       = stop_thresh · f_r     if r = patience  (θ = 0 before: the official start)
        stop and f_r < θ  →  end, round r's picks are not taken
        too many picks    →  keep target − |selected| of them with the smallest keys
        selected ← selected ∪ {pick_k}

    ``indices`` lists the selection round by round, each round in pick order (the official
    code returns a Python set). ``round_values`` lists ``f_r`` of every round run, including
    one that triggered the stop. Before round ``patience`` the threshold is 0, so with
    ``stop`` a round whose mean similarity is negative ends the sampling early (official
    behaviour, kept). ``target`` is capped at N: the official loop raises ``IndexError`` from
    an empty queue once every open-set sample is taken. A selection: no VJP. The similarity
    matrix (N·K·D) and the column sorts are the cost: the Numba and CuPy modules compute
    them in parallel and repeat the greedy walk.

    Args:
        z: open-set features (N, D), float32 or float64, no all-zero row.
        c: k-means centroids of the target features (K, D), same dtype (an input: the
            official ``KMeans(n_clusters=100, random_state=0)`` on the normalized target
            features, ``--cluster_num 100``; every target feature is a centroid when
            K ≥ |target|).
        keys: (N,) uniform draws in [0, 1), one per open-set sample: the random subset of
            the last round when it overshoots the budget (the official ``np.random.choice``).
        budget: number of samples to select (no default: the official code uses
            ``50·|target|`` with ``--stop`` and ``int(sampling_ratio·N)`` without).
        stop: the stopping criterion (default False: ``--stop`` is off unless given).
        stop_thresh: the fraction of ``f_patience`` below which sampling stops (default
            0.95: ``--stop_thresh``).
        patience: the round whose value sets the threshold (default 20: ``--patience``).

    Returns:
        indices: (M,) int64, M ≤ min(budget, N), the selection in order.
        round_values: (R,), dtype of z, ``f_r`` of every round run.

    Reference: Kim et al., *Coreset Sampling from Open-Set for Fine-Grained Self-Supervised
    Learning*, CVPR 2023, arXiv:2303.11101, Sec. 4 (Algorithm 1); official code
    sungnyun/openssl-simcore, ``util/sampling.py`` (``simcore_sampling``, ``greedy``) and the
    defaults of ``train_selfsup.py`` (``parse_args``).

    >>> import numpy as np, refimpl
    >>> z = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0]])
    >>> c = np.array([[1.0, 0.1], [0.1, 1.0]])
    >>> indices, values = refimpl.data_selection.simcore_sampling(z, c, np.zeros(4), budget=3)
    >>> indices  # round 1: centroid 0 takes 0, centroid 1 takes 1; round 2: both pick 2
    array([0, 1, 2])
    """
    similarities = cosine_similarities(z, c)
    order = np.argsort(-similarities, axis=0, kind="stable")  # descending; ties: lower index
    indices, round_values = round_robin_greedy(
        similarities, order, keys, budget, stop, float(stop_thresh), patience
    )
    return (np.asarray(indices, dtype=np.int64), np.asarray(round_values, dtype=z.dtype)), None
