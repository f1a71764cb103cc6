"""Scaling measurements for ``refimpl bench --dask``: a dataset-scale score on 1 and 2 workers."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from ._cluster import cluster_client

__all__ = ["score_scaling"]


def score_scaling(
    examples: int = 2_000_000,
    classes: int = 100,
    chunk: int = 250_000,
    workers: Sequence[int] = (1, 2),
    repeat: int = 3,
) -> list[dict[str, Any]]:
    """EL2N over ``examples`` × ``classes`` float32 logits held in a local cluster's memory.

    For each worker count: a LocalCluster of that many one-thread worker processes; the
    logits and labels are generated on the workers and persisted (that time is reported
    apart, as ``load_s``), then ``refimpl.dask.scores("el2n_score", z, y)`` is computed and
    gathered (n floats) ``repeat`` times; ``seconds`` is the best of them. ``speedup`` is
    relative to the first worker count.
    """
    import dask.array as da
    from distributed import wait

    from .selection import scores

    rows: list[dict[str, Any]] = []
    for count in workers:
        start = time.perf_counter()
        with cluster_client(n_workers=count, threads_per_worker=1) as client:
            started = time.perf_counter() - start
            rng = da.random.default_rng(0)
            z = rng.standard_normal((1, examples, classes), chunks=(1, chunk, classes), dtype="float32")
            y = rng.integers(0, classes, size=examples, chunks=chunk)
            t0 = time.perf_counter()
            z, y = client.persist([z, y])
            wait([z, y])  # every block in the workers' memory
            load = time.perf_counter() - t0
            times = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                client.compute(scores("el2n_score", z, y)).result()
                times.append(time.perf_counter() - t0)
        rows.append(
            {
                "workers": count,
                "examples": examples,
                "classes": classes,
                "chunk": chunk,
                "seconds": min(times),
                "cluster_start_s": started,
                "load_s": load,
                "bytes": examples * classes * 4,
            }
        )
    base = rows[0]["seconds"]
    for row in rows:
        row["speedup"] = base / row["seconds"]
        row["gb_per_s"] = row["bytes"] / row["seconds"] / 1e9
    return rows
