"""refimpl beyond one machine, on Dask (``pip install 'refimpl[dask]'``).

* **Dataset-scale selection** (:mod:`refimpl.dask.selection`): the per-example scores over
  Dask arrays chunked along the sample axis (NumPy or CuPy chunks), score-based pruning, and
  CRAIG's facility-location greedy over a blocked, distributed similarity: equal to the
  in-memory reference.
* **Model-scale merging** (:mod:`refimpl.dask.merging`): the merging maps over state dicts
  whose tensors live in files (``.npy``, memory-mapped or read in chunks, or safetensors),
  written chunk by chunk with peak memory bounded by a multiple of the chunk size.
* **Sweeps**: ``refimpl check --dask [ADDRESS]`` (:mod:`refimpl_conformance`) spreads
  (op, backend, dtype, sample) tasks over a cluster.

Every entry point takes ``client=``: a ``distributed.Client``, a scheduler address, or None
for ``$REFIMPL_DASK_ADDRESS`` or else a local cluster (:func:`cluster_client`). Importing
``refimpl`` never imports Dask; importing this package does.
"""

from __future__ import annotations

from . import merging, selection
from ._cluster import ADDRESS_VARIABLE, cluster_client
from ._files import FileStateDict, FileTensor
from .merging import REFUSED, SUPPORTED, memory_bound, merge, merge_memory, open_state_dict, save_state_dict
from .selection import ROW_SCORES, facility_location_greedy, score_based_pruning, scores

__all__ = [
    "ADDRESS_VARIABLE",
    "REFUSED",
    "ROW_SCORES",
    "SUPPORTED",
    "FileStateDict",
    "FileTensor",
    "cluster_client",
    "facility_location_greedy",
    "memory_bound",
    "merge",
    "merge_memory",
    "merging",
    "open_state_dict",
    "save_state_dict",
    "score_based_pruning",
    "scores",
    "selection",
]
