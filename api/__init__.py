"""superb: benchmark self-supervised speech representations the SUPERB way.

``superb.run``, ``superb.evaluate``, ``superb.export`` and ``superb.Results`` are the Python API
(:mod:`superb.benchmark.api`); ``superb.upstream``, ``superb.downstream`` and ``superb.benchmark``
are the toolkit's packages. Importing ``superb`` itself imports no torch: the API loads on first use.
"""
from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("superb")
except _metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

_API = ("Results", "evaluate", "export", "run")


def __getattr__(name):
    if name in _API:
        from superb.benchmark import api

        return getattr(api, name)
    raise AttributeError(f"module 'superb' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_API))


__all__ = ["__version__", *_API]
