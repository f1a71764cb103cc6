"""State dicts whose tensors live in files: a directory of ``.npy`` files, or one ``.safetensors`` file.

A file-backed tensor (:class:`FileTensor`) knows its shape, dtype and where its elements lie in
the file (C order, one contiguous byte range). It is read a FLAT element range at a time with
explicit reads into a fresh array (``readinto`` at the byte offset), and written the same way
(``os.pwrite``). Nothing is memory-mapped: a mapping of the file would count every page touched
in the process's resident memory until it is unmapped, and a merge touches every page of every
model; with explicit reads the resident memory is what the chunks in flight hold.

The two formats:

* **A directory of .npy files**, one per tensor, named after the tensor: ``<name>.npy``, where
  the three characters that cannot or must not appear in a file name are percent-encoded
  (``%`` → ``%25``, ``/`` → ``%2F``, ``\\`` → ``%5C``: ``"encoder/layer.0.weight"`` is stored
  as ``encoder%2Flayer.0.weight.npy``). Files are standard NumPy format (``numpy.load`` reads
  them); C order only (a Fortran-order file is refused: its flat C-order ranges are not
  contiguous). A directory records no order: its tensors are listed by name.
* **A safetensors file**: 8 bytes (little-endian u64) giving the length of a JSON header
  ``{name: {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, "__metadata__": {...}}``,
  then the tensors' bytes (little-endian, C order), offsets counted from the end of the header.
  The header is parsed here (the optional ``safetensors`` package is not needed to read or
  write; its ``safe_open(..., framework="numpy")`` reads what :func:`save_state_dict` writes).
  Tensors are listed in name order, as ``safe_open(...).keys()`` lists them.

Both readers refuse, with :class:`refimpl.InputError`, what they cannot represent as NumPy
arrays (bfloat16 and float8 safetensors dtypes, object arrays).
"""

from __future__ import annotations

import json
import os
import re
import struct
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from refimpl import InputError

__all__ = [
    "FileTensor",
    "FileStateDict",
    "create_npy",
    "create_safetensors",
    "open_state_dict",
    "save_state_dict",
    "tensor_file_name",
    "tensor_name",
]

#: safetensors' dtype codes and the NumPy dtypes they are (little-endian).
SAFETENSORS_DTYPES: dict[str, np.dtype] = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"),
    "U32": np.dtype("<u4"),
    "U16": np.dtype("<u2"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
_SAFETENSORS_CODES = {dtype: code for code, dtype in SAFETENSORS_DTYPES.items()}
_ESCAPES = {"%": "%25", "/": "%2F", "\\": "%5C"}


def tensor_file_name(name: str) -> str:
    """The ``.npy`` file name of tensor ``name``: ``%``, ``/`` and ``\\`` percent-encoded.

    >>> tensor_file_name("encoder/layer.0.weight"), tensor_name("encoder%2Flayer.0.weight.npy")
    ('encoder%2Flayer.0.weight.npy', 'encoder/layer.0.weight')
    """
    if not name or name in (".", ".."):
        raise InputError(f"save_state_dict: tensor name {name!r} cannot be a file name")
    return "".join(_ESCAPES.get(character, character) for character in name) + ".npy"


def tensor_name(file_name: str) -> str:
    """The tensor name of a ``.npy`` file name (the inverse of :func:`tensor_file_name`)."""
    unescape = {escape: character for character, escape in _ESCAPES.items()}
    return re.sub("%25|%2F|%5C", lambda match: unescape[match.group(0)], file_name[: -len(".npy")])


class FileTensor:
    """One tensor stored in a file: ``shape``, ``dtype``, and its C-order elements as the bytes
    ``[offset, offset + size·itemsize)`` of ``path``.

    ``read(start, stop)`` returns the flat elements ``[start, stop)`` as a new array of the
    native-byte-order dtype; ``write(start, values)`` writes flat elements at ``start`` (the
    file must already have its full size). Each call opens the file itself, so a FileTensor can
    be pickled to another process (a Dask worker) and used from several threads at once.
    """

    def __init__(self, path: str | os.PathLike[str], offset: int, dtype: Any, shape: tuple[int, ...]):
        self.path = os.fspath(path)
        self.offset = int(offset)
        self.file_dtype = np.dtype(dtype)
        self.dtype = self.file_dtype.newbyteorder("=")
        self.shape = tuple(int(s) for s in shape)
        self.ndim = len(self.shape)
        self.size = int(np.prod(self.shape, dtype=np.int64))
        self.nbytes = self.size * self.dtype.itemsize

    def __repr__(self) -> str:
        return f"FileTensor({self.path!r}, shape={self.shape}, dtype={self.dtype})"

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """The flat elements ``[start, stop)`` (default: all of them), read from the file."""
        stop = self.size if stop is None else stop
        if not 0 <= start <= stop <= self.size:
            raise InputError(f"FileTensor.read: range [{start}, {stop}) is outside 0..{self.size}")
        values = np.empty(stop - start, dtype=self.file_dtype)
        buffer = memoryview(values).cast("B")
        with open(self.path, "rb", buffering=0) as file:
            file.seek(self.offset + start * self.dtype.itemsize)
            done = 0
            while done < len(buffer):
                count = file.readinto(buffer[done:])
                if not count:
                    raise InputError(
                        f"{self.path}: the file ends before the tensor does (truncated?): read "
                        f"{done} of {len(buffer)} bytes at element {start}"
                    )
                done += count
        if self.file_dtype != self.dtype:  # a big-endian file: swap once, here
            values = values.astype(self.dtype)
        return values

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        """The whole tensor in memory (``numpy.asarray(tensor)``), in its shape."""
        values = self.read().reshape(self.shape)
        return values if dtype is None else values.astype(dtype, copy=False)

    def write(self, start: int, values: np.ndarray) -> None:
        """Write flat elements at ``start`` (``values`` is cast to nothing: dtypes must agree)."""
        values = np.ascontiguousarray(values).reshape(-1)
        if values.dtype != self.dtype:
            raise InputError(
                f"FileTensor.write: {self.path}: expected {self.dtype} values, got {values.dtype}"
            )
        if start < 0 or start + values.size > self.size:
            raise InputError(
                f"FileTensor.write: range [{start}, {start + values.size}) is outside 0..{self.size}"
            )
        if self.file_dtype != self.dtype:
            values = values.astype(self.file_dtype)
        data = memoryview(values).cast("B")
        descriptor = os.open(self.path, os.O_WRONLY)
        try:
            position, done = self.offset + start * self.dtype.itemsize, 0
            while done < len(data):
                done += os.pwrite(descriptor, data[done:], position + done)
        finally:
            os.close(descriptor)


class FileStateDict(Mapping[str, FileTensor]):
    """A state dict (name → :class:`FileTensor`) opened from ``path``; see :func:`open_state_dict`."""

    def __init__(self, path: str | os.PathLike[str], tensors: Mapping[str, FileTensor], format: str):
        self.path = os.fspath(path)
        self.format = format  # "npy" or "safetensors"
        self._tensors = dict(tensors)

    def __getitem__(self, name: str) -> FileTensor:
        return self._tensors[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)

    def __repr__(self) -> str:
        return f"<FileStateDict {self.format} {self.path!r}: {len(self)} tensors>"

    def load(self) -> dict[str, np.ndarray]:
        """Every tensor read into memory (for small models and tests)."""
        return {name: np.asarray(tensor) for name, tensor in self.items()}


# -- reading ---------------------------------------------------------------------------------
def open_state_dict(path: str | os.PathLike[str]) -> FileStateDict:
    """Open a file-backed state dict: a directory of ``.npy`` files or a ``.safetensors`` file.

    Only the headers are read; the tensors are :class:`FileTensor` objects read in flat
    element ranges on demand (``tensor.read(start, stop)``) or whole (``numpy.asarray``).
    ``refimpl.dask.merge`` takes them where the op takes state dicts.

    >>> import numpy as np, tempfile, os
    >>> folder = os.path.join(tempfile.mkdtemp(), "model")
    >>> _ = save_state_dict(folder, {"w": np.arange(6.0).reshape(2, 3), "step": np.array(7)})
    >>> model = open_state_dict(folder)
    >>> sorted(model), model["w"].shape, model["w"].read(2, 5)
    (['step', 'w'], (2, 3), array([2., 3., 4.]))
    >>> import shutil; shutil.rmtree(os.path.dirname(folder))
    """
    path = Path(path)
    if path.is_dir():
        return _open_npy_directory(path)
    if path.is_file():
        return _open_safetensors(path)
    raise InputError(
        f"open_state_dict: argument 'path': expected a directory of .npy files or a .safetensors file, "
        f"got {str(path)!r}, which does not exist"
    )


def _open_npy_directory(path: Path) -> FileStateDict:
    tensors = {}
    for file in sorted(path.iterdir()):
        if file.suffix != ".npy" or not file.is_file():
            continue
        with open(file, "rb") as handle:
            try:
                version = np.lib.format.read_magic(handle)
                if version == (1, 0):
                    shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(handle)
                else:
                    shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(handle)
            except ValueError as error:
                raise InputError(f"open_state_dict: {file} is not a .npy file: {error}") from None
            offset = handle.tell()
        if dtype.hasobject:
            raise InputError(f"open_state_dict: {file} holds Python objects; only numeric arrays are read")
        if fortran_order and len(shape) > 1:
            raise InputError(
                f"open_state_dict: {file} is in Fortran order; re-save it in C order "
                "(numpy.save(file, numpy.ascontiguousarray(array)))"
            )
        tensor = FileTensor(file, offset, dtype, shape)
        if file.stat().st_size < offset + tensor.nbytes:
            raise InputError(f"open_state_dict: {file} is shorter than its header says (truncated?)")
        tensors[tensor_name(file.name)] = tensor
    tensors = {name: tensors[name] for name in sorted(tensors)}
    return FileStateDict(path, tensors, "npy")


def _open_safetensors(path: Path) -> FileStateDict:
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            raise InputError(f"open_state_dict: {path} is neither a directory nor a safetensors file")
        (header_length,) = struct.unpack("<Q", head)
        if header_length > min(size - 8, 100 * 2**20):
            raise InputError(
                f"open_state_dict: {path} is not a safetensors file (a header of {header_length} bytes)"
            )
        try:
            header = json.loads(handle.read(header_length))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise InputError(
                f"open_state_dict: {path}: the safetensors header is not JSON: {error}"
            ) from None
    start = 8 + header_length
    tensors = {}
    for name in sorted(k for k in header if k != "__metadata__"):
        entry = header[name]
        code = entry.get("dtype")
        if code not in SAFETENSORS_DTYPES:
            raise InputError(
                f"open_state_dict: {path}: tensor '{name}' has dtype {code}, which NumPy cannot hold "
                f"(readable: {', '.join(SAFETENSORS_DTYPES)})"
            )
        begin, end = (int(v) for v in entry["data_offsets"])
        tensor = FileTensor(path, start + begin, SAFETENSORS_DTYPES[code], tuple(entry["shape"]))
        if end - begin != tensor.nbytes or start + end > size:
            raise InputError(
                f"open_state_dict: {path}: tensor '{name}' has data_offsets {[begin, end]}, which do not "
                f"hold {tensor.shape} {code} inside the file"
            )
        tensors[name] = tensor
    return FileStateDict(path, tensors, "safetensors")


# -- writing ---------------------------------------------------------------------------------
def _check_writable(function: str, name: str, dtype: np.dtype, safetensors: bool) -> None:
    if dtype.hasobject or (safetensors and dtype.newbyteorder("<") not in _SAFETENSORS_CODES):
        raise InputError(f"{function}: tensor '{name}' has dtype {dtype}, which the format cannot hold")


def create_npy(
    folder: str | os.PathLike[str], specs: Mapping[str, tuple[tuple[int, ...], Any]]
) -> dict[str, FileTensor]:
    """Create one ``.npy`` file per tensor in ``folder`` (made if missing): the header, then the
    file extended to its full size (zeros, sparse on most file systems); returns the tensors to
    write into. ``specs`` maps names to ``(shape, dtype)``. Existing files of those names are
    replaced."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for name, (shape, dtype) in specs.items():
        dtype = np.dtype(dtype)
        _check_writable("save_state_dict", name, dtype, safetensors=False)
        file = folder / tensor_file_name(name)
        header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": tuple(shape)}
        with open(file, "wb") as handle:
            np.lib.format.write_array_header_2_0(handle, header)
            offset = handle.tell()
            tensor = FileTensor(file, offset, dtype, tuple(shape))
            handle.truncate(offset + tensor.nbytes)
        tensors[name] = tensor
    return tensors


def create_safetensors(
    path: str | os.PathLike[str], specs: Mapping[str, tuple[tuple[int, ...], Any]]
) -> dict[str, FileTensor]:
    """Create a ``.safetensors`` file holding ``specs`` (name → ``(shape, dtype)``), in the given
    order: the header, then the data area at its full size (zeros); returns the tensors to
    write into. The header is padded with spaces so that the data starts at a multiple of 8."""
    entries, position = {}, 0
    for name, (shape, dtype) in specs.items():
        dtype = np.dtype(dtype)
        _check_writable("save_state_dict", name, dtype, safetensors=True)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        code = _SAFETENSORS_CODES[dtype.newbyteorder("<")]
        entries[name] = {"dtype": code, "shape": list(shape), "data_offsets": [position, position + nbytes]}
        position += nbytes
    header = json.dumps(entries, separators=(",", ":")).encode()
    header += b" " * (-(len(header) + 8) % 8)
    start = 8 + len(header)
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(header)) + header)
        handle.truncate(start + position)
    return {
        name: FileTensor(path, start + entry["data_offsets"][0], specs[name][1], tuple(specs[name][0]))
        for name, entry in entries.items()
    }


def save_state_dict(
    path: str | os.PathLike[str], state: Mapping[str, Any], *, chunk_bytes: int = 64 * 2**20
) -> FileStateDict:
    """Write a state dict (name → array, in memory or file-backed) to ``path``: a ``.safetensors``
    file if the name ends so, else a directory of ``.npy`` files (created; existing files of the
    same tensor names are replaced). Returns it opened (:func:`open_state_dict`).

    Arrays are written ``chunk_bytes`` at a time, so a file-backed state dict is converted
    without holding a tensor in memory.
    """
    if not isinstance(state, Mapping) or not state:
        raise InputError(
            f"save_state_dict: argument 'state': expected a non-empty mapping of names to arrays, "
            f"got {type(state).__name__}"
        )
    arrays = {
        name: value if isinstance(value, FileTensor) else np.asarray(value) for name, value in state.items()
    }
    specs = {name: (tuple(a.shape), np.dtype(a.dtype).newbyteorder("=")) for name, a in arrays.items()}
    path = Path(path)
    safetensors = path.suffix == ".safetensors"
    targets = create_safetensors(path, specs) if safetensors else create_npy(path, specs)
    for name, source in arrays.items():
        copy_flat(source, targets[name], chunk_bytes)
    return open_state_dict(path)


def copy_flat(source: Any, target: FileTensor, chunk_bytes: int) -> None:
    """Copy a tensor (in memory or a FileTensor) into ``target``, ``chunk_bytes`` at a time."""
    step = max(1, chunk_bytes // max(target.dtype.itemsize, 1))
    flat = None if isinstance(source, FileTensor) else np.ascontiguousarray(source).reshape(-1)
    for start in range(0, target.size, step):
        stop = min(start + step, target.size)
        values = source.read(start, stop) if flat is None else flat[start:stop]
        target.write(start, values.astype(target.dtype, copy=False))
