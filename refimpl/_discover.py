"""Collecting a backend's implementations from its modules (used by the bundled backends)."""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

from ._op import Impl

__all__ = ["collect_impls"]


def collect_impls(package: ModuleType) -> dict[str, Impl]:
    """Merge the ``IMPLS`` dicts of every module under ``package`` (op name -> Impl).

    A backend keeps one module per paper, mirroring the reference; each module lists what
    it implements in ``IMPLS``, so adding an op never touches a shared file.
    """
    impls: dict[str, Impl] = {}
    for info in sorted(pkgutil.walk_packages(package.__path__, package.__name__ + "."), key=lambda i: i.name):
        module = importlib.import_module(info.name)
        for name, impl in getattr(module, "IMPLS", {}).items():
            if name in impls:
                raise TypeError(f"{package.__name__}: {name} is implemented twice ({info.name})")
            impls[name] = impl
    return impls
