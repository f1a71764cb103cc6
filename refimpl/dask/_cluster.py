"""Where refimpl's Dask work runs: a cluster at an address, or a local one started for it."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

__all__ = ["ADDRESS_VARIABLE", "cluster_client"]

#: The environment variable naming a running scheduler (``tcp://host:8786``), used when no
#: address is given.
ADDRESS_VARIABLE = "REFIMPL_DASK_ADDRESS"


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
    ``Client`` (used as is, not closed), or None: then ``$REFIMPL_DASK_ADDRESS`` when set,
    otherwise a ``LocalCluster`` of ``n_workers`` processes (default: one per CPU) with
    ``threads_per_worker`` threads each, closed on exit. Worker processes, not threads: the
    reference is NumPy code that holds the GIL between array operations.
    """
    distributed = _require_distributed()
    if address is not None and not isinstance(address, str):
        yield address  # a Client the caller owns
        return
    address = address or os.environ.get(ADDRESS_VARIABLE) or None
    if address:
        with distributed.Client(address) as client:
            yield client
        return
    workers = n_workers or os.cpu_count() or 1
    with (
        distributed.LocalCluster(
            n_workers=workers,
            threads_per_worker=threads_per_worker,
            processes=True,
            memory_limit=memory_limit,
            dashboard_address=":0",  # a free port: never the default 8787 another cluster holds
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client
