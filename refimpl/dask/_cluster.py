"""Where refimpl's Dask work runs: a cluster at an address, or a local one started for it."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

__all__ = ["ADDRESS_VARIABLE", "THREAD_VARIABLES", "cluster_client"]

#: The environment variable naming a running scheduler (``tcp://host:8786``), used when no
#: address is given.
ADDRESS_VARIABLE = "REFIMPL_DASK_ADDRESS"

#: The thread-pool sizes a local cluster's workers get (their share of the CPUs).
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def _require_distributed() -> Any:
    try:
        import distributed
    except ImportError as error:  # pragma: no cover - the message is what is tested
        raise ImportError(
            "refimpl.dask needs Dask's distributed scheduler: pip install 'refimpl[dask]'"
        ) from error
    return distributed


@contextlib.contextmanager
def cluster_client(
    address: str | Any | None = None,
    *,
    n_workers: int | None = None,
    threads_per_worker: int = 1,
    memory_limit: str | int | None = "auto",
) -> Iterator[Any]:
    """A ``distributed.Client`` for the duration of a ``with`` block.

    ``address`` may be a running scheduler's address (``"tcp://10.0.0.5:8786"``), an existing
    ``Client`` (used as is, not closed), or None: then the client this process already has
    (``distributed.default_client()``, when ``n_workers`` is not given), else
    ``$REFIMPL_DASK_ADDRESS`` when set, otherwise a ``LocalCluster`` of ``n_workers`` processes
    (default: one per CPU) with ``threads_per_worker`` threads each, closed on exit. Worker
    processes, not threads: the reference is NumPy code that holds the GIL between array
    operations. The local workers' BLAS/OpenMP/Numba pools get their share of the CPUs and
    Dask's profiler is off; on a cluster of your own, start the workers so (``--nthreads 1``,
    ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``NUMBA_NUM_THREADS`` = CPUs per worker,
    ``DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=False``).
    """
    distributed = _require_distributed()
    if address is not None and not isinstance(address, str):
        yield address  # a Client the caller owns
        return
    if address is None and n_workers is None:
        try:
            current = distributed.default_client()
        except ValueError:  # no client in this process
            current = None
        if current is not None:
            yield current  # the user's own: used as is, not closed
            return
    address = address or os.environ.get(ADDRESS_VARIABLE) or None
    if address:
        with distributed.Client(address) as client:
            yield client
        return
    import dask

    workers = n_workers or _cpu_count()
    # each worker gets its share of the CPUs for its thread pools (with every worker's BLAS,
    # OpenMP and Numba pools using every CPU, the workers slow each other down), and no
    # statistical profiler (it samples the running task's stack every 10 ms: on refimpl's many
    # small NumPy calls it cost 1.5× in a sweep). BLAS and OpenMP read their sizes when NumPy
    # loads, so Dask sets them in this process's environment while it spawns the workers
    # ("pre-spawn"), and they are restored here right after; Numba re-reads its variable at
    # every compilation and refuses a change once its threads run, so it is set only inside
    # the workers, which import Numba later ("environ").
    share = str(max(1, _cpu_count() // (workers * threads_per_worker)))
    settings: dict[str, Any] = {
        f"distributed.nanny.pre-spawn-environ.{name}": share
        for name in THREAD_VARIABLES
        if "NUMBA" not in name
    }
    settings["distributed.nanny.environ.NUMBA_NUM_THREADS"] = share
    settings["distributed.worker.profile.enabled"] = False
    with dask.config.set(settings):
        spawned = set(dask.config.get("distributed.nanny.pre-spawn-environ", {}))
    saved = {name: os.environ.get(name) for name in spawned}
    try:
        with dask.config.set(settings):
            cluster = distributed.LocalCluster(
                n_workers=workers,
                threads_per_worker=threads_per_worker,
                processes=True,
                memory_limit=memory_limit,
                dashboard_address=":0",  # a free port: never the default 8787 another cluster holds
            )
    finally:
        _restore(saved)
    with cluster, distributed.Client(cluster) as client:
        yield client


def _restore(saved: dict[str, str | None]) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
