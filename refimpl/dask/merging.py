"""Model-scale merging: the merging ops over state dicts in files, written chunk by chunk with Dask.

``refimpl.merging.uniform_soup([m1, m2, m3])`` needs the three models, their stack and the
result in memory at once. :func:`merge` makes the same call over models that live in files
(:func:`refimpl.dask.open_state_dict`: a directory of ``.npy`` files or a ``.safetensors`` file)
and writes the result to a file, never holding more than a few chunks of each tensor::

    soup = refimpl.dask.merge("uniform_soup", [m1, m2, m3], out="soup.safetensors")

How. Every op of :data:`SUPPORTED` is elementwise over a parameter tensor's elements: element j
of the result depends on element j of each input only (and on coefficients shared by the whole
tensor). So each float tensor is cut into ranges of its FLAT (C-order) elements, ~``chunk_bytes``
per input. One Dask task per range reads the range of every input (explicit reads, no memory
map) and calls the op itself on them, stacked exactly as the state-dict call stacks whole
tensors (so the op layer validates each chunk, and the result equals the in-memory call bit
for bit); the tasks' results form a ``dask.array`` (``from_delayed``, concatenated) that
``da.store`` writes each result range at its byte offset in
the output file, whose header is written first. Integer buffers are copied from the first model,
as in the state-dict call (``refimpl/_state_dict.py``).

Memory. One task reads one range of every input (``chunk_bytes`` each), calls the op and hands
the result to the writer, so a chunk lives only as long as its task. For the uniform soup of K
float32 models a task holds at most the (m, K) stack, plus one range being read, or the op's
float64 sum and mean (2 + 2 chunks), then the float32 result: ``(K + 4)·chunk_bytes``. With T
threads, the peak resident memory above the imports is bounded by :func:`memory_bound`,
``T·(K + 4)·chunk_bytes + 32 MiB``, whatever the models' size (measured by
:func:`merge_memory`; ``tests/test_dask_merging.py`` asserts it). Other ops hold a few more
temporaries of the op (expert_merging: three (K, m) coefficient arrays).

Where it runs. ``client=None`` uses Dask's local threaded scheduler (``threads`` threads, by
default one per CPU). A ``distributed.Client`` or a scheduler address runs the tasks on that
cluster (:func:`refimpl.dask.cluster_client`): the workers read the input files and write the
output file themselves, so every path must name the same file on the client and on every worker
(a shared file system, or a local cluster). The client writes the output's header and the
buffers.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from refimpl import InputError, UnknownOpError, get

from .._state_dict import _bind, _check_per_tensor_mappings, _Models, _split
from ..merging.expert_merging import chunk_bounds
from ._cluster import cluster_client
from ._files import (
    FileStateDict,
    FileTensor,
    copy_flat,
    create_npy,
    create_safetensors,
    open_state_dict,
    save_state_dict,
    tensor_file_name,
)

__all__ = [
    "REFUSED",
    "SUPPORTED",
    "merge",
    "merge_memory",
    "memory_bound",
    "open_state_dict",
    "save_state_dict",
]

#: The ops :func:`merge` runs, and why each may be computed range by range.
SUPPORTED: Mapping[str, str] = {
    "uniform_soup": "θ_j = (1/K) Σ_k θ_k,j: element j of the models only",
    "learned_soup": "θ_j = Σ_k softmax(α)_k θ_k,j; α is one (K,) array per tensor or shared",
    "atlas_composition": "θ_j = θ₀_j + Σ_t λ_t τ_t,j; λ is one (T,) array per tensor or shared",
    "wise_ft_interpolate": "θ_j = (1 − α) θ_pre,j + α θ_ft,j, α a scalar",
    "interpolate_params": "θ_j = (1 − λ) θ_A,j + λ θ_B,j, λ a scalar",
    "sparse_ft_compose": "θ_j = θ₀_j + Σ_s φ_s,j",
    "rws_patch": "θ_j = θ_clean,j + Σ_c β_c RWS_c,j (in float64); α is per tensor or shared",
    "task_vector": "τ_j = θ_k,j − θ₀_j",
    "expert_merging": "θ_j = θ₀_j + Σ_k sigmoid(a_k,c(j)) τ_k,j: the coefficient of element j "
    "depends on the chunk c(j) of the WHOLE tensor that holds it, so each range is given the raw "
    "coefficient of each of its elements (chunk_bounds of the whole tensor), one chunk per element",
}

#: Merging ops :func:`merge` refuses, and why.
REFUSED: Mapping[str, str] = {
    "greedy_soup": "a whole-model op: each candidate soup is scored by an oracle on the whole model",
    "robust_weight_signature": "not elementwise: the projection needs max|Δ|, max|a| and two inner "
    "products over the whole tensor before any element can be computed (a two-pass map; not done)",
    "apply_permutation": "not a state-dict op and not elementwise: a row and column gather of one "
    "(O, I) layer (permute_mlp applies it per layer); a layer's rows fit in memory in any model "
    "whose layers do",
    "weight_matching": "a whole-model optimization (linear assignments over every layer), not a map",
}

_CHUNK_ALLOWANCE = 32 * 2**20  # interpreter, Dask's graph and bookkeeping, thread stacks


def memory_bound(models: int, chunk_bytes: int, threads: int) -> int:
    """The stated bound on the peak resident memory (bytes, above the memory after imports) of a
    uniform soup of ``models`` float32 models merged with ``chunk_bytes`` on ``threads`` threads:
    ``threads·(K + 4)·chunk_bytes + 32 MiB`` (see the module docstring for the count)."""
    return threads * (models + 4) * chunk_bytes + _CHUNK_ALLOWANCE


# -- the merge -----------------------------------------------------------------------------------
def merge(
    name: str,
    *args: Any,
    out: str | os.PathLike[str],
    chunk_bytes: int = 64 * 2**20,
    client: Any = None,
    threads: int | None = None,
    **kwargs: Any,
) -> FileStateDict:
    """Merge whole models range by range and write the result to ``out``.

    The call is the op's state-dict call (``refimpl.merging.<name>(*args, **kwargs)``, see
    :data:`SUPPORTED`), with state dicts that are file-backed (:func:`open_state_dict`) or in
    memory, plus where the result goes:

    Args:
        name: the op, one of :data:`SUPPORTED`.
        *args, **kwargs: the op's arguments, as for its state-dict call.
        out: a path ending in ``.safetensors`` (one file), or a directory for ``.npy`` files
            (created if missing; files of the output's tensors are replaced, and other ``.npy``
            files in it are refused). It must not be one of the inputs.
        chunk_bytes: bytes of each input read per task (default 64 MiB); the peak memory is a
            multiple of it (:func:`memory_bound`), not of the models' size.
        client: None for Dask's local threaded scheduler, or a ``distributed.Client`` or a
            scheduler address (the workers must see the same paths, see the module docstring).
        threads: threads of the local scheduler (default: one per CPU); ignored with a client.

    Returns:
        The written state dict, opened (:func:`open_state_dict`): the merged float tensors, and
        the integer buffers of the first model, in the first model's order (name order for a
        directory of ``.npy`` files).

    >>> import numpy as np, tempfile, os
    >>> from refimpl.dask.merging import merge
    >>> folder = tempfile.mkdtemp()
    >>> models = [{"w": np.full((2, 3), float(k)), "step": np.array(k)} for k in (1, 2, 6)]
    >>> soup = merge("uniform_soup", models, out=os.path.join(folder, "soup"))
    >>> np.asarray(soup["w"]), np.asarray(soup["step"])
    (array([[3., 3., 3.],
           [3., 3., 3.]]), array(1))
    >>> import shutil; shutil.rmtree(folder)
    """
    import dask
    import dask.array as da

    op = _supported_op(name)
    if isinstance(chunk_bytes, bool) or not isinstance(chunk_bytes, int | np.integer) or chunk_bytes < 1:
        raise InputError(f"merge: argument 'chunk_bytes': expected a positive integer, got {chunk_bytes!r}")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise InputError(f"merge: argument 'threads': expected a positive integer or None, got {threads!r}")
    rule = op.state_dict
    arguments = _bind(op, args, kwargs)
    models = _Models(op.name, rule, arguments)
    _check_per_tensor_mappings(op, models, arguments)
    first = _first_model(rule, arguments)
    out_path = _check_output(op.name, out, arguments, rule, models.names)

    for tensor in models.float_names:  # the op's checks on one element of each tensor, up front
        if int(np.prod(models.shapes[tensor])) > 0:
            _call_op(op, tensor, _first_elements(op, arguments, tensor))

    specs = {k: (tuple(first[k].shape), np.dtype(first[k].dtype).newbyteorder("=")) for k in models.names}
    create = create_safetensors if out_path.suffix == ".safetensors" else create_npy
    targets = create(out_path, specs)

    sources, writers = [], []
    for tensor in models.float_names:
        size = targets[tensor].size
        if size == 0:
            continue
        columns = _argument_columns(rule, arguments, tensor)
        step = max(1, chunk_bytes // max(c.dtype.itemsize for c in columns))
        shared, dtype = _shared_arguments(rule, arguments, tensor), specs[tensor][1]
        blocks = []
        for start in range(0, size, step):
            stop = min(start + step, size)
            ranges = [c.range(start, stop) for c in columns]  # in memory: the slices only
            task = dask.delayed(_merge_block, pure=False)(
                ranges, op_name=op.name, arguments=shared, tensor=tensor, start=start, size=size
            )
            blocks.append(da.from_delayed(task, shape=(stop - start,), dtype=dtype, meta=np.empty(0, dtype)))
        result = da.concatenate(blocks)
        sources.append(result)
        writers.append(_FlatWriter(targets[tensor]))
    if sources:
        stored = da.store(sources, writers, lock=False, compute=False)
        if client is None:
            dask.compute(stored, scheduler="threads", num_workers=threads)
        else:
            with cluster_client(client) as connected:
                dask.compute(stored, scheduler=connected)
    for buffer, value in models.buffers.items():
        copy_flat(value, targets[buffer], chunk_bytes)
    return open_state_dict(out_path)


def _supported_op(name: Any) -> Any:
    try:
        op = get(name)
    except UnknownOpError as error:
        raise InputError(f"merge: argument 'name': {error}") from None
    if op.name not in SUPPORTED:
        reason = REFUSED.get(op.name, "not a merging op over state dicts")
        raise InputError(
            f"merge: argument 'name': expected an op computed element by element over parameter "
            f"tensors ({', '.join(sorted(SUPPORTED))}), got {op.name!r}: {reason}"
        )
    return op


def _first_model(rule: Any, arguments: Mapping[str, Any]) -> Mapping[str, Any]:
    """The state dict whose buffers and order the output takes (as in ``_state_dict._Models``)."""
    for name, mode in rule.inputs.items():
        if mode == "tensor":
            return arguments[name]
        if mode == "models":
            return arguments[name][0]
    raise AssertionError("every supported op takes a state dict")


def _argument_columns(rule: Any, arguments: Mapping[str, Any], tensor: str) -> list[_Columns]:
    """Tensor ``tensor`` of the state dicts of each argument, in the order of the op's arguments:
    one column for a "tensor" argument, K columns for a "models" argument."""
    columns = []
    for name, mode in rule.inputs.items():
        if mode == "tensor":
            columns.append(_Columns([arguments[name][tensor]]))
        elif mode == "models":
            columns.append(_Columns([model[tensor] for model in arguments[name]]))
    return columns


def _shared_arguments(rule: Any, arguments: Mapping[str, Any], tensor: str) -> dict[str, Any]:
    """The op's arguments for tensor ``tensor`` without the state dicts (filled per chunk):
    a per-tensor mapping resolved to this tensor's value, every other argument as given."""
    shared = {}
    for name, value in arguments.items():
        mode = rule.inputs.get(name)
        if mode in ("tensor", "models"):
            continue  # filled per chunk
        if mode == "per_tensor" and isinstance(value, Mapping):
            shared[name] = value[tensor]
        else:
            shared[name] = value
    return shared


def _first_elements(op: Any, arguments: Mapping[str, Any], tensor: str) -> dict[str, Any]:
    """The op's arguments for the first element of tensor ``tensor`` (whole coefficients)."""
    blocks = [columns.read(0, 1) for columns in _argument_columns(op.state_dict, arguments, tensor)]
    return _assemble(op, _shared_arguments(op.state_dict, arguments, tensor), blocks)


def _assemble(op: Any, shared: Mapping[str, Any], blocks: list[np.ndarray]) -> dict[str, Any]:
    """Put the chunks of the inputs where the op takes them, one (m, count) block per argument:
    a "tensor" argument's only column, a "models" argument's (m, K) stack (the layout
    ``numpy.stack(..., axis=-1)`` gives the state-dict call)."""
    call, blocks = dict(shared), iter(blocks)
    for name, mode in op.state_dict.inputs.items():
        if mode == "tensor":
            call[name] = next(blocks)[:, 0]
        elif mode == "models":
            call[name] = next(blocks)
    return call


def _expert_merging_range(call: Mapping[str, Any], start: int, stop: int, size: int) -> dict[str, Any]:
    """expert_merging on the flat elements [start, stop) of a tensor of ``size`` elements.

    The coefficient of element j is that of the chunk c(j) of the whole tensor. Giving the op
    the range with one chunk per element (``official_chunking=False`` and C = stop − start:
    ``chunk_bounds`` is then 0, 1, …, C) and as raw coefficients ``a[:, c(j)]`` makes it
    compute, per element, the same ``sigmoid(a_k,c(j))·τ_k,j`` summed in the same order.
    """
    a = call["a"]
    if not isinstance(a, np.ndarray) or a.ndim != 2:
        return {}  # let the op refuse it, with its own message
    bounds = chunk_bounds(size, a.shape[1], call.get("official_chunking", True))
    chunk_of = np.searchsorted(bounds, np.arange(start, stop), side="right") - 1  # c(j)
    return {"a": a[:, chunk_of], "official_chunking": False}


def _call_op(op: Any, tensor: str, call: Mapping[str, Any]) -> Any:
    args, kwargs = _split(op, call)
    try:
        return op(*args, **kwargs)
    except InputError as error:
        raise type(error)(f"{error} (parameter tensor '{tensor}')") from None


def _merge_block(
    ranges: list[tuple[_Columns, int, int]],
    *,
    op_name: str,
    arguments: Mapping[str, Any],
    tensor: str,
    start: int,
    size: int,
) -> np.ndarray:
    """One task: read the range [start, start + m) of one tensor from every input, call the op
    on it and return the result's range (``da.store`` writes it). Reading inside the task keeps
    each chunk's life to one task: no chunk is read ahead and held waiting for its turn."""
    op = get(op_name)
    blocks = [columns.read(begin, end) for columns, begin, end in ranges]
    call = _assemble(op, arguments, blocks)
    del blocks
    if op.name == "expert_merging":
        call.update(_expert_merging_range(call, start, start + len(call["theta_base"]), size))
    return _call_op(op, tensor, call)


class _Columns:
    """The same tensor of several state dicts as the columns of an (n, count) array, n its number
    of elements: ``read(start, stop)`` reads that flat range of each tensor (explicit reads, no
    memory map) into the columns of one new C-order array, the layout and dtype
    ``numpy.stack(tensors, axis=-1)`` gives the state-dict call (a mixed float32/float64 stack is
    float64 in both)."""

    def __init__(self, sources: list[Any]):
        self.sources = [s if isinstance(s, FileTensor | _InMemory) else _InMemory(s) for s in sources]
        self.dtype = np.result_type(*(s.dtype for s in self.sources))
        self.shape = (int(self.sources[0].size), len(self.sources))

    def range(self, start: int, stop: int) -> tuple[_Columns, int, int]:
        """What a task needs to read rows [start, stop): this object for files (a path and an
        offset each), a new one holding only the slices for arrays in memory."""
        if all(isinstance(source, FileTensor) for source in self.sources):
            return self, start, stop
        pieces = [s if isinstance(s, FileTensor) else s.part(start, stop) for s in self.sources]
        return _Columns(pieces), start, stop

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop): the flat elements [start, stop) of every tensor, as columns."""
        stack = np.empty((stop - start, self.shape[1]), dtype=self.dtype)
        for k, source in enumerate(self.sources):  # one range in memory at a time, then its column
            stack[:, k] = source.read(start, stop)
        return stack


class _InMemory:
    """An array in memory read like a FileTensor: ``read(start, stop)`` gives its flat elements
    [start, stop), the array holding the elements from ``offset`` on (a part sent to a task)."""

    def __init__(self, array: Any, offset: int = 0):
        self.flat = np.ascontiguousarray(array).reshape(-1)
        self.offset = offset
        self.dtype = self.flat.dtype
        self.size = offset + self.flat.size

    def part(self, start: int, stop: int) -> _InMemory:
        return _InMemory(self.flat[start - self.offset : stop - self.offset], start)

    def read(self, start: int, stop: int) -> np.ndarray:
        return self.flat[start - self.offset : stop - self.offset]


class _FlatWriter:
    """The target of ``dask.array.store``: assigning a range writes it at its byte offset."""

    def __init__(self, tensor: FileTensor):
        self.tensor = tensor
        self.shape = (tensor.size,)
        self.dtype = tensor.dtype

    def __setitem__(self, index: Any, values: np.ndarray) -> None:
        (piece,) = index if isinstance(index, tuple) else (index,)
        self.tensor.write(piece.indices(self.tensor.size)[0], values)


def _check_output(op_name: str, out: Any, arguments: Mapping[str, Any], rule: Any, names: list[str]) -> Path:
    if not isinstance(out, str | os.PathLike):
        raise InputError(f"{op_name}: argument 'out': expected a path, got {type(out).__name__}")
    out_path = Path(out)
    inputs = set()
    for name, mode in rule.inputs.items():
        given = arguments[name]
        for model in [given] if mode == "tensor" else given if mode == "models" else []:
            inputs |= {Path(t.path).resolve() for t in model.values() if isinstance(t, FileTensor)}
    if out_path.suffix == ".safetensors":
        if out_path.resolve() in inputs:
            raise InputError(f"{op_name}: argument 'out': {str(out)!r} is one of the inputs")
        if out_path.is_dir():
            raise InputError(f"{op_name}: argument 'out': {str(out)!r} is a directory, not a file")
        return out_path
    if out_path.exists() and not out_path.is_dir():
        raise InputError(
            f"{op_name}: argument 'out': expected a directory for .npy files or a path ending in "
            f".safetensors, got {str(out)!r}, an existing file"
        )
    if any(path.parent == out_path.resolve() for path in inputs):
        raise InputError(f"{op_name}: argument 'out': {str(out)!r} holds one of the inputs")
    if out_path.is_dir():
        expected = {tensor_file_name(k) for k in names}
        others = sorted(p.name for p in out_path.glob("*.npy") if p.name not in expected)
        if others:
            raise InputError(
                f"{op_name}: argument 'out': the directory {str(out)!r} holds .npy files of other tensors "
                f"({', '.join(others[:3])}{', ...' if len(others) > 3 else ''}); give an empty directory"
            )
    return out_path


# -- measuring the memory ------------------------------------------------------------------------
def merge_memory(
    model_bytes: int,
    chunk_bytes: int,
    models: int = 3,
    *,
    tensors: int = 3,
    threads: int | None = None,
    limit_bytes: int | None = None,
    folder: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Measure the peak resident memory of a uniform soup of file-backed models.

    Writes ``models`` float32 models of ``model_bytes`` each (``tensors`` tensors, random values,
    written chunk by chunk) as ``.npy`` directories under ``folder`` (a new temporary directory
    there; default the system's), merges them with :func:`merge` in a fresh Python process and
    deletes everything. The process records ``ru_maxrss`` after its imports and after the
    merge; the difference is the merge's peak. ``limit_bytes`` also caps the process's address
    space at its size after the imports plus ``limit_bytes`` (``RLIMIT_AS``), so a merge larger
    than that limit shows that it fits under it. The first and last chunk of every output
    tensor are checked against the mean of the inputs.

    Returns a dict: ``model_bytes``, ``chunk_bytes``, ``models``, ``threads``, ``peak_bytes``
    (above the imports), ``bound_bytes`` (:func:`memory_bound`), ``limit_bytes``, ``seconds``
    (the merge), ``checked`` (the spot check passed). A merge that does not fit under
    ``limit_bytes`` raises ``RuntimeError`` with the process's MemoryError.
    """
    threads = threads or os.cpu_count() or 1
    root = Path(tempfile.mkdtemp(prefix="refimpl-merge-memory-", dir=folder))
    try:
        paths = _write_random_models(root, model_bytes, models, tensors, chunk_bytes)
        request = {
            "inputs": [str(p) for p in paths],
            "out": str(root / "soup"),
            "chunk_bytes": chunk_bytes,
            "threads": threads,
            "limit_bytes": limit_bytes,
        }
        environment = dict(os.environ, MALLOC_ARENA_MAX="2", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
        completed = subprocess.run(
            [sys.executable, "-m", "refimpl.dask.merging", json.dumps(request)],
            capture_output=True,
            text=True,
            env=environment,
            check=False,
        )
        if completed.returncode != 0:
            raise RuntimeError(f"merge_memory: the measuring process failed:\n{completed.stderr[-4000:]}")
        measured = json.loads(completed.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {
        "model_bytes": model_bytes,
        "chunk_bytes": chunk_bytes,
        "models": models,
        "threads": threads,
        "bound_bytes": memory_bound(models, chunk_bytes, threads),
        "limit_bytes": limit_bytes,
        **measured,
    }


def _write_random_models(
    root: Path, model_bytes: int, models: int, tensors: int, chunk_bytes: int
) -> list[Path]:
    elements = max(1, model_bytes // 4 // tensors)
    rng = np.random.default_rng(0)
    paths = []
    for k in range(models):
        path = root / f"model_{k}"
        targets = create_npy(path, {f"layer_{t}.weight": ((elements,), np.float32) for t in range(tensors)})
        step = max(1, chunk_bytes // 4)
        for target in targets.values():
            for start in range(0, target.size, step):
                target.write(start, rng.random(min(step, target.size - start), dtype=np.float32))
        paths.append(path)
    return paths


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith(field))


def _measure(request: Mapping[str, Any]) -> dict[str, Any]:
    """In the measuring process: the merge of :func:`merge_memory`, its peak and its time."""
    import dask.array  # noqa: F401 - imported before the baseline, as every import the merge needs

    inputs = [open_state_dict(p) for p in request["inputs"]]
    # the peak is the high-water mark of the resident set, reset here (Linux: writing 5 to
    # clear_refs) so that a transient peak of the imports does not hide the merge's
    reset = _reset_peak_rss()
    baseline = _status_bytes("VmRSS:") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    original = resource.getrlimit(resource.RLIMIT_AS)
    if request["limit_bytes"]:
        size = _status_bytes("VmSize:")
        limit = size + int(request["limit_bytes"])
        if original[1] != resource.RLIM_INFINITY:
            limit = min(limit, original[1])
        resource.setrlimit(resource.RLIMIT_AS, (limit, original[1]))
    begin = time.perf_counter()
    soup = merge(
        "uniform_soup",
        inputs,
        out=request["out"],
        chunk_bytes=request["chunk_bytes"],
        threads=request["threads"],
    )
    seconds = time.perf_counter() - begin
    peak = _status_bytes("VmHWM:") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    resource.setrlimit(resource.RLIMIT_AS, original)  # the spot check below is not measured
    step = max(1, request["chunk_bytes"] // 4)
    checked = True
    for name, tensor in soup.items():
        for start in (0, max(0, tensor.size - step)):
            stop = min(start + step, tensor.size)
            stack = np.stack([model[name].read(start, stop) for model in inputs], axis=-1)
            expected = (stack.sum(axis=-1, dtype=np.float64) / len(inputs)).astype(np.float32)
            checked &= bool(np.array_equal(tensor.read(start, stop), expected))
    return {"peak_bytes": peak - baseline, "baseline_bytes": baseline, "seconds": seconds, "checked": checked}


if __name__ == "__main__":
    print(json.dumps(_measure(json.loads(sys.argv[1]))))
