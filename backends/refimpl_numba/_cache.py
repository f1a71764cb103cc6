"""Numba's on-disk cache for this package, invalidated when any of its source files changes.

Numba keys a cached kernel by its own file's modification time and size. A kernel that
inlines a helper from another file (``_vmath.exp32`` into a loss's row loop, say) keeps
the helper's old code after the helper's file is edited, until its own file changes: a
stale kernel that a test would pass or fail for the wrong reason. The locators installed
here add a digest of every ``.py`` file of ``refimpl_numba`` to the stamp of the package's
kernels, so that any edit recompiles them all (a fresh install compiles them anyway). The
cache stays where Numba puts it (``__pycache__`` beside the source, or the user-wide cache
directory when that is not writable, or ``NUMBA_CACHE_DIR``); other packages' kernels keep
Numba's own locators.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["install", "source_digest"]

PACKAGE_DIR = Path(__file__).resolve().parent


def source_digest(package_dir: Path = PACKAGE_DIR) -> str:
    """sha256 over the relative paths and contents of the package's ``.py`` files."""
    digest = hashlib.sha256()
    for path in sorted(package_dir.rglob("*.py")):
        digest.update(path.relative_to(package_dir).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _inside_package(py_file: str) -> bool:
    try:
        return Path(os.path.abspath(py_file)).is_relative_to(PACKAGE_DIR)
    except (OSError, ValueError):
        return False


def _package_locator(base: type, digest: str) -> type:
    """``base`` (one of Numba's file-backed locators) restricted to this package, with the
    package digest in its source stamp."""

    class PackageLocator(base):
        def get_source_stamp(self):
            return (super().get_source_stamp(), digest)

        @classmethod
        def from_function(cls, py_func, py_file):
            if not _inside_package(py_file):
                return None
            return super().from_function(py_func, py_file)

    PackageLocator.__name__ = PackageLocator.__qualname__ = f"RefimplPackage{base.__name__}"
    return PackageLocator


_installed: list[type] = []


def _lock_cache_saves() -> None:
    """Make a cache save one step for every process: Numba's ``IndexDataCacheFile.save`` reads
    the index, picks the first free data-file number and writes both, so two processes saving
    two signatures of one kernel at once (pytest-xdist workers, ``refimpl check -j 2``) can pick
    the same number: the index then maps one signature to the other's machine code, and a later
    call fails with "can't unbox array". An exclusive lock on a file beside the index serializes
    the read-pick-write (where ``fcntl`` exists; elsewhere Numba's own behaviour stays)."""
    try:
        import fcntl

        from numba.core.caching import IndexDataCacheFile
    except ImportError:
        return
    if getattr(IndexDataCacheFile.save, "_refimpl_locked", False):
        return
    unlocked = IndexDataCacheFile.save

    def save(self, key, data):
        with open(self._index_path + ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                return unlocked(self, key, data)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    save._refimpl_locked = True
    IndexDataCacheFile.save = save


def install() -> bool:
    """Put the package locators first in Numba's list (once); False where this Numba lacks
    the locator classes (its own cache, keyed by file, is used then)."""
    if _installed:
        return True
    try:
        from numba.core.caching import (
            CacheImpl,
            InTreeCacheLocator,
            UserProvidedCacheLocator,
            UserWideCacheLocator,
        )
    except ImportError:
        return False
    _lock_cache_saves()
    digest = source_digest()
    _installed.extend(
        _package_locator(base, digest)
        for base in (UserProvidedCacheLocator, InTreeCacheLocator, UserWideCacheLocator)
    )
    CacheImpl._locator_classes[:0] = _installed
    return True
