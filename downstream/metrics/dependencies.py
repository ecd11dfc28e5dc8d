"""Optional packages of some metrics (and of the ST vocabulary), imported on first use.

``pesq``, ``pyworld`` and ``pysptk`` are the ``superb[synthesis]`` extra; when one is missing,
:func:`require` raises :class:`MissingDependencyError`, which names the package and the extra.
"""
from __future__ import annotations

import contextlib
import importlib
import sys
import types


class MissingDependencyError(ImportError, ValueError):
    """An optional metric package is not installed; the message says how to install it (a
    ValueError too, so the CLI reports it as a one-line user error)."""


@contextlib.contextmanager
def _pkg_resources_shim():
    """pyworld 0.3.5 and pysptk 1.0.1 ``import pkg_resources`` at import time, which setuptools
    >= 81 no longer ships. If it is missing, a minimal stand-in (``get_distribution(name).version``)
    is visible *only while they are imported*, then removed again."""
    try:
        import pkg_resources  # noqa: F401

        yield
        return
    except ImportError:
        pass
    from importlib import metadata

    class _Distribution:
        def __init__(self, name):
            self.version = metadata.version(name)

    shim = types.ModuleType("pkg_resources")
    shim.get_distribution = _Distribution
    sys.modules["pkg_resources"] = shim
    try:
        yield
    finally:
        if sys.modules.get("pkg_resources") is shim:
            del sys.modules["pkg_resources"]


def require(module: str, purpose: str, extra: str = "synthesis"):
    """Import an optional package or raise :class:`MissingDependencyError` naming it."""
    try:
        with _pkg_resources_shim():
            return importlib.import_module(module)
    except ImportError as exc:
        package = {"pysptk": "pysptk", "pyworld": "pyworld", "pesq": "pesq", "pystoi": "pystoi",
                   "sacrebleu": "sacrebleu", "sentencepiece": "sentencepiece"}.get(module, module)
        raise MissingDependencyError(
            f"{purpose} needs the Python package {package!r}, which is not installed ({exc}). Install it "
            f"with: pip install 'superb[{extra}]' (or pip install {package})") from exc


__all__ = ["MissingDependencyError", "require"]
