"""Dataset Quantization: GraphCut bins, uniform sampling from the bins, patch-dropped composites
(Dataset Quantization)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..authoring import ArgumentError, FloatArray, IntArray, IntScalar, Paper, RealScalar, op

__all__ = [
    "PAPER",
    "bin_uniform_sampling",
    "graphcut_bins",
    "mae_random_mask",
    "patch_drop_composite",
    "unit_rows",
]

PAPER = Paper(
    "Dataset Quantization",
    arxiv="2308.10524",
    year=2023,
    code="magic-research/Dataset_Quantization",
)


# -- shared arithmetic (the Numba and CuPy modules repeat it operation for operation) --------------
def unit_rows(f: np.ndarray) -> np.ndarray:
    """``u_i = f_i / ‖f_i‖₂`` in float64, the squared norm summed over the features in order.

    Feature by feature (``Σ_k f_ik²`` accumulated k = 0, 1, ...), never through BLAS: every
    row gets the same operations, so identical embeddings give bitwise identical unit rows
    (and identical gains: their tie is then exact and the lowest index wins).
    """
    points = np.asarray(f, dtype=np.float64)
    squared = np.zeros(points.shape[0])
    for k in range(points.shape[1]):
        squared += points[:, k] * points[:, k]
    return points / np.sqrt(squared)[:, None]


def _row_dots(u: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``⟨u_x, w⟩`` for every row x, accumulated over the features in order (no BLAS)."""
    dots = np.zeros(u.shape[0])
    for k in range(u.shape[1]):
        dots += u[:, k] * w[k]
    return dots


def _check_graphcut(arguments: Mapping[str, Any]) -> None:
    f, k = arguments["f"], arguments["k"]
    if k > f.shape[0]:
        raise ArgumentError("k", f"k <= N = {f.shape[0]} (every bin holds N // k >= 1 samples)", f"k = {k}")
    squared = (np.asarray(f, dtype=np.float64) ** 2).sum(axis=1)  # ‖f_i‖² as unit_rows sums it
    bad = (squared == 0) | ~np.isfinite(squared)
    if bool(np.any(bad)):
        row = int(np.argmax(bad))
        raise ArgumentError(
            "f",
            "embeddings with a non-zero norm whose float64 square is finite and > 0 "
            "(the cosine of a zero vector is 0/0)",
            f"row {row} with ‖f‖² = {squared[row]}",
        )


@op(
    inputs={"f": FloatArray("N", "D"), "k": IntScalar(1), "lam": RealScalar()},
    outputs=("bins", "gains"),
    check=_check_graphcut,
)
def graphcut_bins(f, *, k=10, lam=1.0):
    r"""Dataset Quantization's bins: k successive greedy GraphCut coresets of the remaining pool.

    The dataset is split into k non-overlapping bins, each a GraphCut coreset of what the
    earlier bins left: the first bins hold the most representative samples, the later ones
    increasingly diverse leftovers, so sampling from *every* bin (``bin_uniform_sampling``)
    keeps both. GraphCut trades representation (similarity to the pool) against redundancy
    (similarity to what is already chosen).

    Forward. ``sim(i, j) = 0.5 + 0.5·cos(f_i, f_j)`` ∈ [0, 1] (``cossim_np``). With R the
    remaining pool (ascending indices, all N at first), repeat for b = 0, ..., k − 1: pick
    ``budget = N // k`` samples one at a time,

        gain(x | S) = λ Σ_{j∈R} sim(j, x) − 2 Σ_{s∈S} sim(s, x)      x ∈ R \ S
        S ← S ∪ {argmax_x gain(x | S)}       (ties: the lowest index, as NumPy's argmax)

    then ``bins[b] = S`` (selection order) and R ← R \ S. The leftover ``N − k·budget``
    samples are in no bin. Both sums are linear in the unit vectors ``u = f/‖f‖``: with
    ``m = Σ_{j∈R} u_j`` and ``t = Σ_{s∈S} u_s``,

        gain(x | S) = λ|R|/2 − |S| + ⟨λm/2 − t, u_x⟩

    which is what the code evaluates: O(D) per candidate and step, never an N × N matrix
    (the official code fills the pool's whole similarity matrix). ``m`` is summed over R in
    ascending order, ``t`` in selection order, every dot product over the features in order.
    A selection: no VJP; reference-only for the greedy's order of operations is part of its
    definition (the Numba and CuPy modules repeat it).

    Args:
        f: embeddings (N, D), float32 or float64, finite, no all-zero row (its cosine is 0/0;
            the official guard only replaces −inf).
        k: number of bins, 1 ≤ k ≤ N (default 10, the paper's K; ``num_exp`` in the code).
        lam: λ, the weight of the representation term (default 1.0: ``GraphCut(lam=1.)``).

    Returns:
        bins: (k, N // k) int64, bin b's indices in selection order (the official code
        returns each bin as a set, in ascending order: ``self.index[selected]``).
        gains: (k, N // k), dtype of f, the gain of each pick when it was made.

    Reference: Zhou et al., *Dataset Quantization*, ICCV 2023, arXiv:2308.10524, Sec. 3.2
    (Eq. 3-4); official code magic-research/Dataset_Quantization (``quantize_sample.py``:
    the bins over the remaining indices; ``dq/methods/methods_utils/submodular_function.py``,
    ``GraphCut.calc_gain``; ``submodular_optimizer.py``, ``NaiveGreedy``; ``cossim.py``).

    >>> import numpy as np, refimpl
    >>> f = np.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [-1.0, 0.0]])
    >>> bins, gains = refimpl.data_selection.graphcut_bins(f, k=2)
    >>> bins
    array([[1, 3],
           [0, 2]])
    """
    u = unit_rows(f)
    count = f.shape[0]
    budget = count // k
    half_lam = 0.5 * float(lam)
    available = np.ones(count, dtype=bool)
    bins = np.empty((k, budget), dtype=np.int64)
    gains = np.empty((k, budget))
    for b in range(k):
        pool = np.flatnonzero(available)  # ascending: a lower local index is a lower global index
        pool_u = u[pool]
        m = np.zeros(u.shape[1])
        for row in pool_u:  # Σ_{j∈R} u_j in ascending order
            m += row
        t = np.zeros(u.shape[1])  # Σ_{s∈S} u_s in selection order
        taken = np.zeros(pool.shape[0], dtype=bool)
        for step in range(budget):
            w = half_lam * m - t
            gain = (half_lam * pool.shape[0] - step) + _row_dots(pool_u, w)
            gain[taken] = -np.inf  # selected samples are not candidates again
            x = int(np.argmax(gain))  # ties: the lowest index
            taken[x] = True
            t += pool_u[x]
            bins[b, step] = pool[x]
            gains[b, step] = gain[x]
        available[bins[b]] = False
    return (bins, gains.astype(f.dtype, copy=False)), None


# -- uniform sampling from the bins ----------------------------------------------------------------
def _check_bins(arguments: Mapping[str, Any]) -> None:
    bins = np.asarray(arguments["bins"])
    if np.unique(bins).size != bins.size:
        raise ArgumentError(
            "bins", "disjoint bins of distinct indices (each sample in one bin at most)", "a repeat"
        )
    keys = np.asarray(arguments["keys"])
    if bool(np.any((keys < 0) | (keys >= 1))):
        raise ArgumentError("keys", "uniform draws in [0, 1)", f"values in [{keys.min()}, {keys.max()}]")


@op(
    inputs={
        "bins": IntArray("k", "m", low=0),
        "keys": FloatArray("k", "m"),
        "ratio": RealScalar(0, 1, low_open=True),
    },
    outputs=("indices",),
    check=_check_bins,
)
def bin_uniform_sampling(bins, keys, *, ratio=0.1):
    r"""Dataset Quantization's sampling: the same fraction drawn uniformly from every bin.

    Each bin is sampled uniformly without replacement; drawing from all bins keeps samples
    of every level of representativeness (the early GraphCut bins) and diversity (the late
    ones). The randomness is the input ``keys``: one uniform draw per bin entry, and a bin's
    sample is its ``n_b`` entries with the smallest keys — a uniformly random subset (the
    order statistics of i.i.d. uniforms are exchangeable).

    Forward, per bin b (m entries)::

        n_b     = round(ratio · m)                       (Python's round: half to even)
        order_b = argsort(keys[b])                       (stable: equal keys, lower position first)
        picked  = bins[b, order_b[:n_b]]

    ``indices`` concatenates the bins' picks, bin by bin, each in draw (ascending key)
    order. With k bins of m = N/k samples this draws ``ratio·N`` in all, ``ratio·N/k`` per
    bin. A selection: no VJP; reference-only.

    Args:
        bins: (k, m) integer indices ≥ 0, distinct (``graphcut_bins``' output).
        keys: (k, m) uniform draws in [0, 1) (the explicit randomness).
        ratio: fraction drawn from each bin, 0 < ratio ≤ 1 (default 0.1: ``--fraction``).

    Returns:
        indices: (k·round(ratio·m),) int64.

    Reference: Zhou et al., *Dataset Quantization*, arXiv:2308.10524, Sec. 3.2; official
    code ``quantize_bin.py`` (each bin through ``dq/methods/uniform.py``, ``Uniform``:
    ``np.random.choice(..., round(fraction · |bin|), replace=False)``, per class).

    >>> import numpy as np, refimpl
    >>> bins = np.array([[4, 0, 2], [1, 3, 5]])
    >>> keys = np.array([[0.5, 0.25, 0.75], [0.75, 0.125, 0.5]])
    >>> refimpl.data_selection.bin_uniform_sampling(bins, keys, ratio=0.3)  # round(0.9) = 1 per bin
    array([0, 3])
    """
    per_bin = round(float(ratio) * bins.shape[1])
    order = np.argsort(keys, axis=1, kind="stable")[:, :per_bin]
    return np.take_along_axis(bins, order, axis=1).reshape(-1).astype(np.int64), None


# -- patch-dropped composites ---------------------------------------------------------------------
def mae_random_mask(noise: np.ndarray, mask_ratio: float) -> np.ndarray:
    """MAE's ``random_masking``: per row, the ``L − int(L·(1 − mask_ratio))`` largest noises are dropped."""
    length = noise.shape[1]
    keep = int(length * (1 - mask_ratio))
    ranks = np.argsort(np.argsort(noise, axis=1, kind="stable"), axis=1, kind="stable")
    return ranks >= keep


def _check_patches(arguments: Mapping[str, Any]) -> None:
    x, noise, p = arguments["x"], arguments["noise"], arguments["patch_size"]
    height, width = x.shape[2], x.shape[3]
    if height % p or width % p:
        raise ArgumentError(
            "patch_size", f"a divisor of the image size {height}×{width}", f"patch_size = {p}"
        )
    if noise.shape[1] != (height // p) * (width // p):
        raise ArgumentError(
            "noise",
            f"one value per patch, L = (H/p)·(W/p) = {(height // p) * (width // p)}",
            f"L = {noise.shape[1]}",
        )


@op(
    inputs={
        "x": FloatArray("B", "C", "H", "W"),
        "reconstruction": FloatArray("B", "C", "H", "W"),
        "noise": FloatArray("B", "L"),
        "mask_ratio": RealScalar(0, 1, high_open=True),
        "patch_size": IntScalar(1),
    },
    outputs=("composite", "mask"),
    check=_check_patches,
)
def patch_drop_composite(x, reconstruction, noise, *, mask_ratio=0.2, patch_size=16):
    r"""Dataset Quantization's pixel quantization: drop patches, store the MAE reconstruction there.

    To shrink the stored images further, a fraction of each image's p × p patches is dropped
    and filled back, at training time, by a masked autoencoder. The composite is
    ``x̃ = x ⊙ (1 − M) + MAE(x) ⊙ M`` with M the dropped patches.

    Forward. Patches are numbered row-major (L = (H/p)·(W/p)). MAE's ``random_masking``
    with explicit noise: the ``L − int(L·(1 − mask_ratio))`` patches with the largest noise
    are dropped (stable ranks: of equal noises the lower patch index is kept first). Pass
    uniform draws for the random mask, or −importance (Grad-CAM) to drop the least
    important patches::

        mask[b, l]   = rank_l(noise[b]) ≥ int(L·(1 − mask_ratio))
        composite    = where(M, reconstruction, x)    M = mask upsampled to p × p pixels

    A construction: no VJP; reference-only.

    Args:
        x: images (B, C, H, W), float32 or float64.
        reconstruction: the MAE output for x (B, C, H, W), same dtype (an input).
        noise: (B, L) per-patch noise (the explicit randomness) or negated importance.
        mask_ratio: fraction of patches dropped, 0 ≤ ratio < 1 (default 0.2, the paper's).
        patch_size: p (default 16, ViT's patches), dividing H and W.

    Returns:
        composite: (B, C, H, W), dtype of x.
        mask: (B, L) bool, True where the patch was dropped.

    Reference: Zhou et al., *Dataset Quantization*, arXiv:2308.10524, Sec. 3.3; official
    code ``quantize_pixel.py`` / ``mae_models.py`` (MAE's ``random_masking``).

    >>> import numpy as np, refimpl
    >>> x, r = np.zeros((1, 1, 2, 4)), np.ones((1, 1, 2, 4))
    >>> composite, mask = refimpl.data_selection.patch_drop_composite(
    ...     x, r, np.array([[0.9, 0.1]]), mask_ratio=0.5, patch_size=2)
    >>> composite[0, 0]
    array([[1., 1., 0., 0.],
           [1., 1., 0., 0.]])
    """
    p = patch_size
    batch, _, height, width = x.shape
    mask = mae_random_mask(noise, mask_ratio)
    pixels = mask.reshape(batch, height // p, width // p)
    pixels = np.repeat(np.repeat(pixels, p, axis=1), p, axis=2)[:, None]
    composite = np.where(pixels, reconstruction, x).astype(x.dtype, copy=False)
    return (composite, mask), None
