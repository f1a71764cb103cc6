"""Dataset-scale data selection on Dask: per-example scores, score-based pruning, and CRAIG's
facility-location greedy over a blocked, distributed similarity.

Scores (EL2N, GraNd, margin, CRAIG's gradient proxies) are per example: example i's score reads
only example i's logits, labels and features. :func:`scores` therefore maps the op over the row
blocks of Dask arrays chunked along the sample axis, each block through the op itself (the
reference, or a backend), so every score is computed by the same code on the same numbers as
an in-memory call: the result is the in-memory reference's, bit for bit. One pass over the data.

Pruning (:func:`score_based_pruning`) needs every score before it can rank them: the scores
(one float per example, 8 MB per million) are gathered and the reference op ranks them.

The facility-location greedy (:func:`facility_location_greedy`) needs every pair of a class:
its similarity is built in blocks of candidate rows on the workers (never whole on one
machine), each block kept in its worker's memory; a greedy step asks every block for its best
candidate and keeps the best of the bests. See its docstring for why that is the reference's
selection exactly, and for the passes over the data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

import refimpl
from refimpl import InputError
from refimpl.data_selection import craig

from ._cluster import cluster_client

__all__ = ["ROW_SCORES", "facility_location_greedy", "score_based_pruning", "scores"]

#: The ops :func:`scores` maps over row blocks, and the dimension (as their argument specs name
#: it) that indexes the examples. Each returns one array whose first axis is that dimension.
ROW_SCORES: Mapping[str, str] = {
    "el2n_score": "n",
    "grand_score_last_layer": "n",
    "margin_score": "n",
    "craig_gradient_proxy": "n",
}


def _dask_array() -> Any:
    try:
        import dask.array as da
    except ImportError as error:  # pragma: no cover - depends on the installation
        raise ImportError("refimpl.dask needs Dask: pip install 'refimpl[dask]'") from error
    return da


def _is_dask(value: Any) -> bool:
    return hasattr(value, "dask") and hasattr(value, "chunks")


def _run_block(name: str, backend: str | None, arguments: dict[str, Any]) -> Any:
    function = refimpl.get(name) if backend is None else refimpl.backend(backend).get(name)
    return function(**arguments)


def scores(name: str, *args: Any, backend: str | None = None, **kwargs: Any) -> Any:
    """A per-example score of a dataset held as Dask arrays chunked along the sample axis.

    ``refimpl.dask.scores("el2n_score", z, y)`` is ``refimpl.data_selection.el2n_score(z, y)``
    for ``z`` of shape (R, n, K) and ``y`` (n,) given as Dask (or NumPy) arrays: a lazy Dask
    array of the n scores, chunked like the examples of the first Dask argument (the other
    arguments are rechunked to match; an axis that is not the sample axis is one chunk, as a
    score needs the whole row). Each row block is one call of the op, validated as usual; its
    error names the op and the argument. Compute it with ``.compute()``, or through a
    ``distributed.Client``.

    ``backend`` picks the implementation for every block ("numba", "cupy", ...; default: the
    reference for NumPy chunks, "cupy" for CuPy chunks). The ops: :data:`ROW_SCORES`.
    """
    da = _dask_array()
    if name not in ROW_SCORES:
        raise InputError(
            f"refimpl.dask.scores: op {name!r} is not a per-example score; expected one of "
            f"{sorted(ROW_SCORES)}"
        )
    op = refimpl.get(name)
    try:
        arguments = dict(op.signature.bind(*args, **kwargs).arguments)
    except TypeError as error:
        raise InputError(f"{name}: {error}; signature is {name}{op.signature}") from None
    dim = ROW_SCORES[name]
    axes: dict[str, int] = {}
    for argument, value in arguments.items():
        shape = getattr(op.specs.get(argument), "shape", None) or ()
        if value is not None and dim in shape and hasattr(value, "shape"):
            axes[argument] = shape.index(dim)
            if len(value.shape) != len(shape):
                raise InputError(
                    f"{name}: argument '{argument}': expected {len(shape)} dimensions "
                    f"{tuple(shape)}, got shape {tuple(value.shape)}"
                )
    lengths = {argument: int(arguments[argument].shape[axis]) for argument, axis in axes.items()}
    if len(set(lengths.values())) > 1:
        raise InputError(
            f"{name}: the arguments disagree on the number of examples (axis '{dim}'): {lengths}"
        )
    first = next((a for a in axes if _is_dask(arguments[a])), None)
    if first is None:
        raise InputError(f"refimpl.dask.scores: no argument of {name} is a Dask array")
    row_chunks = arguments[first].chunks[axes[first]]
    meta = arguments[first]._meta
    if backend is None and type(meta).__module__.split(".")[0] == "cupy":
        backend = "cupy"
    chunked = {}
    for argument, axis in axes.items():
        value = arguments[argument]
        value = value if _is_dask(value) else da.from_array(value, chunks=-1)
        chunked[argument] = value.rechunk({i: (row_chunks if i == axis else -1) for i in range(value.ndim)})
    # the output's trailing shape and dtype, from one example (a read of the first block only)
    import dask

    def first_example(argument: str) -> Any:
        value = chunked[argument]
        return value[tuple(slice(0, 1) if i == axes[argument] else slice(None) for i in range(value.ndim))]

    probe = {a: (first_example(a) if a in chunked else v) for a, v in arguments.items()}

    probe = dict(zip(probe, dask.compute(*probe.values()), strict=True))
    sample = np.asarray(_to_numpy(_run_block(name, backend, probe)))
    if sample.ndim == 0 or sample.shape[0] != 1:
        raise InputError(f"refimpl.dask.scores: {name} does not return one row per example")
    blocks = []
    delayed_run = dask.delayed(_run_block, pure=True)
    for b, rows in enumerate(row_chunks):
        block_arguments = dict(arguments)
        for argument, axis in axes.items():
            index = tuple(b if i == axis else 0 for i in range(chunked[argument].ndim))
            block_arguments[argument] = chunked[argument].blocks[index]
        blocks.append(
            da.from_delayed(
                delayed_run(name, backend, block_arguments),
                shape=(rows, *sample.shape[1:]),
                dtype=sample.dtype,
                meta=_empty_like_meta(meta, sample),
            )
        )
    return da.concatenate(blocks, axis=0)


def _empty_like_meta(meta: Any, sample: np.ndarray) -> Any:
    """An empty array of the chunks' library (NumPy or CuPy) with the output's rank and dtype."""
    module = type(meta).__module__.split(".")[0]
    xp = __import__(module) if module == "cupy" else np
    return xp.empty((0,) * sample.ndim, dtype=sample.dtype)


def _to_numpy(value: Any) -> Any:
    get = getattr(value, "get", None)  # a CuPy array
    return get() if callable(get) and not isinstance(value, np.ndarray) else value


def _materialize(value: Any, client: Any = None) -> np.ndarray:
    if not _is_dask(value):
        return np.asarray(_to_numpy(value))
    if client is not None:
        return np.asarray(_to_numpy(client.compute(value).result()))
    return np.asarray(_to_numpy(value.compute()))


def score_based_pruning(
    scores: Any, *, size: int, offset: int = 0, official_offset: bool = False, client: Any = None
) -> np.ndarray:
    """``refimpl.data_selection.score_based_pruning`` on scores held as a (lazy) Dask array.

    Ranking needs every score: they are computed (through ``client`` when given, a
    ``distributed.Client``; else Dask's current scheduler) and gathered — n floats, one pass
    over the data that produced them — then ranked by the reference op, so the indices are
    the in-memory reference's.
    """
    return refimpl.get("score_based_pruning")(
        _materialize(scores, client), size=size, offset=offset, official_offset=official_offset
    )


# -- facility location over a distributed similarity -----------------------------------------------
def _similarity_rows(
    points: np.ndarray, start: int, stop: int, kernel: str, max_distance: float
) -> np.ndarray:
    """Candidate rows ``start:stop`` of the class's similarity (``T[a, i] = s_{i, start+a}``)."""
    return craig.similarity_block(points[start:stop], points, kernel, max_distance)


def _block_max_distance(points: np.ndarray, start: int, stop: int) -> float:
    return float(craig._squared_distances(points[start:stop], points).max())


def _block_best(
    block: np.ndarray | None,
    points: np.ndarray,
    start: int,
    stop: int,
    kernel: str,
    max_distance: float,
    coverage: np.ndarray,
    chosen: Sequence[int],
    tie_break: str,
) -> tuple[float, int]:
    """The best candidate of one block: (its gain, its class-local index); −inf if none is left."""
    rows = block.copy() if block is not None else _similarity_rows(points, start, stop, kernel, max_distance)
    gains = craig.facility_gains(rows, coverage)
    taken = [j - start for j in chosen if start <= j < stop]
    gains[taken] = -np.inf  # selected points are not candidates again
    local = craig._first_max(gains, tie_break)
    return float(gains[local]), start + local


def _block_row(
    block: np.ndarray | None, points: np.ndarray, start: int, j: int, kernel: str, max_distance: float
) -> np.ndarray:
    if block is not None:
        return block[j - start]
    return _similarity_rows(points, j, j + 1, kernel, max_distance)[0]


def facility_location_greedy(
    g: Any,
    y: Any,
    budgets: Any,
    *,
    kernel: str = "submodlib_euclidean",
    tie_break: str = "lowest",
    block_rows: int | None = None,
    persist: bool = True,
    client: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """CRAIG's per-class facility-location greedy with the similarity distributed over a cluster.

    Returns what ``refimpl.data_selection.facility_location_greedy(g, y, budgets, kernel=...,
    tie_break=...)`` returns — the same indices in the same order, the same gains — for ``g``
    (n, d) and ``y`` (n,) as NumPy or Dask arrays.

    How. For each class c (its n_c points, ascending), the proxies ``g[V_c]`` are gathered and
    sent once to every worker; the class's similarity is cut into blocks of candidate rows
    ``T[a, i] = s_{i, j_a}`` (``block_rows`` rows each; default: enough blocks for four per
    worker), each computed on a worker and, with ``persist=True``, kept there. A greedy step
    sends the coverage vector c (n_c floats) to every block; the block computes its candidates'
    gains ``ΔF(j|S) = Σ_i max(0, s_ij − c_i)`` and returns its best candidate under the tie
    rule; the driver keeps the best of the blocks' bests (for ``"lowest"``, the first block
    reaching the maximum: blocks are in index order), then asks the chosen candidate's block
    for its row and updates c. This is the plain greedy, which selects exactly what the
    reference's lazy greedy selects.

    Why it is the reference's selection bit for bit: every similarity entry is computed by the
    same operations whatever the block (``similarity_block``), a gain is a row sum of a
    C-ordered array (the same bits whether the row is alone or in a block of any size:
    ``craig.facility_gains``, the reference's own function), and the first maximum over blocks
    in order is the first maximum over all candidates — so equal gains are broken by the same
    rule, and the gains returned are the reference's.

    Passes over the data, per class: one over ``g[V_c]`` to build the blocks (two with CRAIG's
    kernel, which first needs the class's largest distance, reduced exactly as a max), then
    one per selected point over the similarity blocks held in the workers' memory (n_c² float64
    in all, spread over the workers). With ``persist=False`` nothing is kept: every step
    rebuilds each block from ``g[V_c]`` (k_c + 1 passes over the data, n_c·block_rows·8 bytes
    per task at a time) — for a class whose similarity does not fit in the cluster's memory.

    Args:
        g: proxies (n, d), float32 or float64 (``craig_gradient_proxy``).
        y: classes (n,), integers in [0, C).
        budgets: k_c per class (C,), ``0 <= k_c <= |V_c|``.
        kernel: "submodlib_euclidean" (default) or "craig_max_minus_distance"; the
            reference's "precomputed" (an n × n input) is not offered.
        tie_break: "lowest" (default) or "highest", as in the reference.
        block_rows: candidate rows per block.
        persist: keep the similarity blocks in the workers' memory (default True).
        client: a ``distributed.Client``, a scheduler address, or None (``cluster_client``).

    Returns:
        indices (Σ k_c,) int64 and gains (Σ k_c,) in the dtype of g, as the reference.
    """
    where = "refimpl.dask.facility_location_greedy"
    if kernel not in craig.KERNELS:
        raise InputError(f"{where}: argument 'kernel': expected one of {craig.KERNELS}, got {kernel!r}")
    if tie_break not in ("lowest", "highest"):
        raise InputError(f"{where}: argument 'tie_break': expected 'lowest' or 'highest', got {tie_break!r}")
    if block_rows is not None and (not isinstance(block_rows, int) or block_rows < 1):
        raise InputError(f"{where}: argument 'block_rows': expected an integer >= 1, got {block_rows!r}")
    if len(getattr(g, "shape", ())) != 2:
        raise InputError(f"{where}: argument 'g': expected a 2-D array (n, d), got {type(g).__name__}")
    dtype = np.dtype(g.dtype)
    if dtype.kind != "f":
        raise InputError(f"{where}: argument 'g': expected float32 or float64, got {dtype}")
    labels = _materialize(y)
    budgets = np.asarray(budgets)
    # the reference's own checks of labels and budgets, with a one-feature stand-in for g
    stand_in = np.zeros((g.shape[0], 1), dtype=dtype)
    refimpl.get("facility_location_greedy").bind((stand_in, labels, budgets), {"kernel": kernel})
    members = craig._class_members(labels, budgets.shape[0])
    with cluster_client(client) as dask_client:
        workers = max(1, len(dask_client.scheduler_info().get("workers", {})))
        chosen_all, gains_all = [], []
        for c, points in enumerate(members):
            k = int(budgets[c])
            if k == 0:
                continue
            class_g = _materialize(g[points] if _is_dask(g) else np.asarray(g)[points], dask_client)
            local, gains = _greedy_class(
                dask_client, class_g.astype(np.float64), k, kernel, tie_break, block_rows, persist, workers
            )
            chosen_all.append(points[local])
            gains_all.append(gains)
    indices = np.concatenate(chosen_all) if chosen_all else np.zeros(0, dtype=np.int64)
    gains = np.concatenate(gains_all) if gains_all else np.zeros(0)
    return indices.astype(np.int64), gains.astype(dtype)


def _greedy_class(
    client: Any,
    points: np.ndarray,
    budget: int,
    kernel: str,
    tie_break: str,
    block_rows: int | None,
    persist: bool,
    workers: int,
) -> tuple[np.ndarray, np.ndarray]:
    n = points.shape[0]
    rows = block_rows or max(1, math.ceil(n / (4 * workers)))
    bounds = [(start, min(start + rows, n)) for start in range(0, n, rows)]
    shared = client.scatter(points, broadcast=True, hash=False)
    max_distance = 0.0
    if kernel == "craig_max_minus_distance":
        starts, stops = zip(*bounds, strict=True)
        largest = client.gather(client.map(_block_max_distance, [shared] * len(bounds), starts, stops))
        max_distance = float(np.sqrt(max(largest)))  # the reference's _max_distance, reduced exactly
    if persist:
        blocks = [
            client.submit(_similarity_rows, shared, start, stop, kernel, max_distance, pure=False)
            for start, stop in bounds
        ]
    else:
        blocks = [None] * len(bounds)
    coverage = np.zeros(n)
    chosen: list[int] = []
    chosen_gains: list[float] = []
    try:
        for _ in range(budget):
            shared_coverage = client.scatter(coverage, broadcast=True, hash=False)
            bests = client.gather(
                [
                    client.submit(
                        _block_best,
                        block,
                        shared,
                        start,
                        stop,
                        kernel,
                        max_distance,
                        shared_coverage,
                        list(chosen),
                        tie_break,
                        pure=False,
                    )
                    for block, (start, stop) in zip(blocks, bounds, strict=True)
                ]
            )
            order = bests if tie_break == "lowest" else bests[::-1]
            gain, j = max(order, key=lambda best: best[0])  # max keeps the first of equal gains
            owner = next(b for b, (start, stop) in enumerate(bounds) if start <= j < stop)
            row = client.submit(
                _block_row, blocks[owner], shared, bounds[owner][0], j, kernel, max_distance, pure=False
            ).result()
            np.maximum(coverage, row, out=coverage)
            chosen.append(j)
            chosen_gains.append(gain)
    finally:
        for block in blocks:
            if block is not None:
                block.release()
    return np.asarray(chosen, dtype=np.int64), np.asarray(chosen_gains)
