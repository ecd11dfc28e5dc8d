"""A content-addressed on-disk store of frozen-upstream hidden states, and ``superb cache``.

A frozen upstream gives the same hidden states for the same audio every epoch, so a run can
compute them once and read them back afterwards. This module is the storage layer only; the
runner decides what an item is and what identifies the upstream.

Layout on disk
--------------
::

    <cache_dir>/features/                       default_store_dir(): the root
        <namespace key>/                        one upstream configuration x storage dtype
            identity.json                       {"store_version", "identity", "dtype", "key"}
            <item[:2]>/<item>.sfe               one file per item (fan-out by its first 2 chars)
            <item[:2]>/.<item>.sfe.<rand>.tmp   a write in progress (never read)

``<cache_dir>`` is the folder of ``superb run --cache-dir`` (the mini corpus lives there too).
An entry file (``.sfe``) is a 16-byte fixed header -- magic ``b"SUPERBFE"``, format version
(uint32 little-endian), length of the JSON header (uint32 little-endian) -- then the JSON header
``{"item", "dtype", "shapes", "offsets", "size"}`` padded with spaces to a multiple of 64 bytes,
then the arrays' raw little-endian C-order bytes, each starting at a multiple of 64 bytes.
``get`` reads the whole file with one ``readinto`` into a fresh buffer and slices the arrays out
of it (no per-array copy; fp32 tensors are views of that buffer, writable and private to the
caller). A read-only ``np.memmap`` measured no faster once the caller touches the data, and a
memory-mapped file truncated by someone else would crash the reader with SIGBUS.

Key derivation
--------------
* The namespace key is the first 32 hex digits of the sha256 of the canonical JSON (sorted keys,
  no spaces) of ``{"store_version": STORE_VERSION, "identity": identity, "dtype": dtype}``. The
  identity is whatever JSON-able mapping the caller passes (upstream name, weights sha or seed,
  options, layers, kind, precision...); it is stored verbatim in ``identity.json`` for ``info``.
  Another identity or dtype is another namespace; bumping ``STORE_VERSION`` orphans them all.
* :func:`audio_key` names an item by its audio: the sha256 of the absolute path (symbolic links
  not resolved), the file's size and ``st_mtime_ns``, and the segment's ``start`` and ``num_samples``. A file that is
  rewritten or replaced gets new keys (its old entries are simply never asked for again).

Atomicity and sharing between concurrent runs
---------------------------------------------
Any number of processes may use one store at once without a lock. ``put`` writes an entry to a
unique temporary name in the entry's own folder and renames it into place with ``os.replace``,
so a reader sees either no entry or a whole one; two processes writing the same item both
succeed (the last rename wins; both wrote the same values). A writer killed mid-write leaves
only a ``.tmp`` file, which is never read, and which the first size scan of a later process
deletes once it is over an hour old. Nothing is fsync'ed: a machine crash (not a process kill)
may leave a truncated entry, which the corruption check catches.

Corruption check
----------------
Each read validates the magic, the format version, the JSON header (item, dtype, shapes and
offsets consistent) and that the file's size equals the size the header promises. That catches
truncated, overwritten-header and foreign files; it does not catch flipped data bytes in a file
of the right size -- a full checksum on each read would cost more than the read itself. A bad
entry is reported with ``warnings.warn`` naming the file, deleted, counted as ``corrupt`` (and as
a miss) and never served: ``get`` returns None and the caller recomputes.

Budget
------
``FeatureStore(root, max_bytes=N)`` caps the whole store (all namespaces; the sizes of the files
in it, temporary files excluded). The store's size is scanned once per process (per
``FeatureStore``) and then tracked as this process writes. A ``put`` that would take the store
past ``max_bytes`` writes nothing and returns False (counted as ``refused``): a full store stops
growing, and the items it refused are recomputed every time they are needed. Processes sharing
a store each track their own writes, so together they may overshoot by what the others wrote
since their scan. A full disk (``ENOSPC``/``EDQUOT``) is treated the same way, with one warning.
``max_bytes=None`` is unbounded.

Dtypes
------
``fp32`` (default) stores the values exactly as computed. ``fp16`` halves the size (about 3
significant digits; values beyond +-65504 become inf); ``bf16`` halves it too, with fp32's range
and about 2-3 significant digits (stored as the raw uint16 bits of the bf16 tensor). ``get``
always returns float32 CPU tensors. The dtype is part of the namespace key.

Last used
---------
Opening a namespace (``FeatureStore.namespace``) touches its ``identity.json``; ``info``'s
``last_used`` is the newest mtime among the namespace's files, i.e. the last time a run opened
it or wrote to it.

``superb cache info`` / ``superb cache clear``
----------------------------------------------
``info`` lists the namespaces (key, upstream, layers, kind, dtype, entries, size, last used),
the total and the store path. ``clear`` removes all namespaces, or those named with ``--key``
(a unique prefix is enough); it asks for confirmation, or needs ``--yes`` when not run in a
terminal. A namespace is first renamed away and then deleted, so clearing while a run uses the
store is safe: that run's reads become misses and are recomputed, and its later writes recreate
the namespace folder.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import struct
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

STORE_VERSION = 1
DTYPES = ("fp32", "fp16", "bf16")

#: entry file format
MAGIC = b"SUPERBFE"
FORMAT_VERSION = 1
ENTRY_SUFFIX = ".sfe"
IDENTITY_FILE = "identity.json"
TMP_SUFFIX = ".tmp"
#: temporary files older than this (seconds) are a killed writer's and are removed by the scan
STALE_TMP_SECONDS = 3600.0

_FIXED = struct.Struct("<8sII")  # magic, format version, JSON header length
_ALIGN = 64
_ITEMSIZE = {"fp32": 4, "fp16": 2, "bf16": 2}
_NP_DTYPE = {"fp32": "<f4", "fp16": "<f2", "bf16": "<u2"}
_ITEM_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}$")
_KEY_RE = re.compile(r"^[0-9a-f]{32}$")


class StoreError(ValueError):
    """A misuse of the store or an inconsistent store folder (the message names what)."""


def default_store_dir(cache_dir=None) -> Path:
    """``<cache_dir>/features``; ``cache_dir`` defaults to the mini corpus cache
    (``$SUPERB_CACHE_DIR``, else ``$XDG_CACHE_HOME/superb``, else ``~/.cache/superb``)."""
    if cache_dir is None:
        from superb.downstream.fileio import default_cache_dir

        cache_dir = default_cache_dir()
    return Path(cache_dir).expanduser() / "features"


def audio_key(path, start: int, num_samples: int) -> str:
    """Hex sha256 of the audio file's absolute path, size, ``st_mtime_ns`` and the segment's
    ``start`` and ``num_samples``: a changed or replaced file gets new keys.

    The path is made absolute without resolving symbolic links (``os.path.abspath``: one ``stat``
    per key instead of one ``lstat`` per path component); a file reached through two different
    paths is therefore stored twice, never confused with another."""
    try:
        resolved = os.path.abspath(os.path.expanduser(os.fspath(path)))
        st = os.stat(resolved)
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, f"audio file {path} does not exist (feature store key)") from None
    except OSError as exc:
        raise OSError(exc.errno, f"audio file {path}: cannot stat it for the feature store key ({exc.strerror})") from None
    doc = json.dumps([str(resolved), st.st_size, st.st_mtime_ns, int(start), int(num_samples)],
                     separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(doc.encode("utf-8")).hexdigest()


def _canonical(obj: Any) -> str:
    try:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"feature store identity must be JSON-able: {exc}") from None


def _check_dtype(dtype: str) -> str:
    if dtype not in DTYPES:
        raise StoreError(f"feature store dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
    return dtype


def _is_tmp(name: str) -> bool:
    return name.startswith(".") and name.endswith(TMP_SUFFIX)


def _walk_files(folder: Path):
    """``(DirEntry, is_tmp)`` for every regular file below ``folder`` (missing folders: nothing)."""
    stack = [str(folder)]
    while stack:
        try:
            it = os.scandir(stack.pop())
        except (FileNotFoundError, NotADirectoryError):
            continue
        with it:
            for e in it:
                try:
                    if e.is_dir(follow_symlinks=False):
                        stack.append(e.path)
                    elif e.is_file(follow_symlinks=False):
                        yield e, _is_tmp(e.name)
                except FileNotFoundError:
                    continue


def _align(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


class FeatureStore:
    """The store under ``root`` (created when first written); ``max_bytes`` caps its total size
    (None: unbounded). Cheap to construct; namespaces come from :meth:`namespace`."""

    def __init__(self, root, max_bytes: Optional[int] = None):
        self.root = Path(root).expanduser()
        if max_bytes is not None:
            max_bytes = int(max_bytes)
            if max_bytes < 0:
                raise StoreError(f"feature store max_bytes must be >= 0 or None, got {max_bytes}")
        self.max_bytes = max_bytes
        self._tracked: Optional[int] = None  # the store's size: scanned once, then tracked
        self._warned_disk = False

    def __repr__(self) -> str:
        return f"FeatureStore({str(self.root)!r}, max_bytes={self.max_bytes})"

    # -- namespaces -----------------------------------------------------------------------
    def namespace(self, identity: Mapping[str, Any], dtype: str = "fp32") -> "Namespace":
        """The namespace of ``identity`` (a JSON-able mapping) stored as ``dtype``; its folder and
        ``identity.json`` are created if missing (a different ``identity.json`` there is an error)."""
        _check_dtype(dtype)
        if not isinstance(identity, Mapping):
            raise StoreError(f"feature store identity must be a mapping, got {type(identity).__name__}")
        doc = {"store_version": STORE_VERSION, "identity": dict(identity), "dtype": dtype}
        canonical = _canonical(doc)
        key = hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]
        doc = json.loads(canonical)  # the identity as stored (tuples -> lists, ...)
        ns = Namespace(self, key, doc["identity"], dtype)
        ns._ensure_identity(touch=True)
        return ns

    def _namespace_dirs(self) -> List[Path]:
        try:
            return sorted(Path(e.path) for e in os.scandir(self.root)
                          if e.is_dir(follow_symlinks=False) and _KEY_RE.match(e.name))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def info(self) -> List[Dict]:
        """One dict per namespace (sorted by key): ``key``, ``identity`` and ``dtype`` (from its
        ``identity.json``; None when unreadable), ``entries``, ``bytes`` (all its files but
        temporary ones), ``last_used`` (newest mtime, seconds since the epoch; None if empty)."""
        out = []
        for d in self._namespace_dirs():
            identity = dtype = None
            try:
                doc = json.loads((d / IDENTITY_FILE).read_text(encoding="utf-8"))
                identity, dtype = doc.get("identity"), doc.get("dtype")
            except (OSError, ValueError, AttributeError):
                pass
            entries = size = 0
            last = None
            for e, tmp in _walk_files(d):
                if tmp:
                    continue
                try:
                    st = e.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                size += st.st_size
                last = st.st_mtime if last is None else max(last, st.st_mtime)
                if e.name.endswith(ENTRY_SUFFIX):
                    entries += 1
            out.append({"key": d.name, "identity": identity, "dtype": dtype, "entries": entries,
                        "bytes": size, "last_used": last})
        return out

    def total_bytes(self) -> int:
        """The store's size now (a fresh scan; temporary files excluded)."""
        return sum(ns["bytes"] for ns in self.info())

    def clear(self, keys: Optional[Sequence[str]] = None) -> Tuple[int, int]:
        """Remove the namespaces ``keys`` (full keys or unique prefixes; None: all of them);
        returns ``(namespaces removed, bytes freed)``. Each is renamed away first, then deleted,
        so runs using it see misses, never half-deleted entries."""
        infos = {ns["key"]: ns for ns in self.info()}
        if keys is None:
            chosen = sorted(infos)
        else:
            chosen = []
            for k in keys:
                k = str(k).strip().lower()
                matches = [full for full in infos if full.startswith(k)] if k else []
                if not matches:
                    raise StoreError(f"no namespace {k!r} in the feature store {self.root} (see `superb cache info`)")
                if len(matches) > 1:
                    raise StoreError(f"namespace key prefix {k!r} is ambiguous in {self.root}: {', '.join(matches)}")
                if matches[0] not in chosen:
                    chosen.append(matches[0])
        removed = freed = 0
        for key in chosen:
            src = self.root / key
            doomed = Path(tempfile.mkdtemp(prefix=f".{key}.deleting-", dir=self.root))
            try:
                os.rename(src, doomed / key)
            except FileNotFoundError:  # removed by someone else meanwhile
                shutil.rmtree(doomed, ignore_errors=True)
                continue
            shutil.rmtree(doomed, ignore_errors=True)
            removed += 1
            freed += infos[key]["bytes"]
        self._tracked = None  # rescan on the next put
        return removed, freed

    # -- budget ---------------------------------------------------------------------------
    def _size(self) -> int:
        """The tracked size of the store (scanned on first use; stale temporary files removed)."""
        if self._tracked is None:
            total = 0
            now = time.time()
            for e, tmp in _walk_files(self.root):
                try:
                    st = e.stat(follow_symlinks=False)
                    if tmp:
                        if now - st.st_mtime > STALE_TMP_SECONDS:
                            os.unlink(e.path)
                        continue
                except FileNotFoundError:
                    continue
                total += st.st_size
            self._tracked = total
        return self._tracked

    def _reserve(self, nbytes: int, replaced: int) -> bool:
        if self.max_bytes is None:
            if self._tracked is not None:
                self._tracked += nbytes - replaced
            return True
        size = self._size()
        if size - replaced + nbytes > self.max_bytes:
            return False
        self._tracked = size - replaced + nbytes
        return True


class Namespace:
    """The entries of one upstream configuration in one dtype (see :meth:`FeatureStore.namespace`).

    ``hits``, ``misses``, ``writes``, ``refused`` and ``corrupt`` count this process's calls."""

    def __init__(self, store: FeatureStore, key: str, identity: dict, dtype: str):
        self.store = store
        self.key = key
        self.dir = store.root / key
        self.identity = identity
        self.dtype = dtype
        self.hits = self.misses = self.writes = self.refused = self.corrupt = 0
        self._np_dtype = _NP_DTYPE[dtype]

    def __repr__(self) -> str:
        return f"Namespace({self.key}, dtype={self.dtype}, dir={str(self.dir)!r})"

    def _identity_doc(self) -> dict:
        return {"store_version": STORE_VERSION, "identity": self.identity, "dtype": self.dtype, "key": self.key}

    def _ensure_identity(self, touch: bool = False) -> None:
        """Create the folder and ``identity.json`` if missing; check an existing one matches."""
        path = self.dir / IDENTITY_FILE
        want = self._identity_doc()
        try:
            have = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            have = None
        except (OSError, ValueError) as exc:
            raise StoreError(f"{path}: unreadable feature store identity ({exc}); "
                             f"remove the folder with `superb cache clear --key {self.key}`") from None
        if have is None:
            from superb.downstream.fileio import atomic_write_text

            self.dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, json.dumps(want, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
            return
        if have != want:
            raise StoreError(f"{path} describes another namespace than key {self.key} "
                             f"(expected {_canonical(want)}); remove it with `superb cache clear --key {self.key}`")
        if touch:
            try:
                os.utime(path)
            except OSError:
                pass

    def _path(self, item: str) -> Path:
        if not isinstance(item, str) or not _ITEM_RE.match(item):
            raise StoreError(f"feature store item {item!r}: expected 1-200 characters of [A-Za-z0-9_.-], "
                             "not starting with '.' (e.g. an audio_key)")
        return self.dir / item[:2] / (item + ENTRY_SUFFIX)

    def __contains__(self, item) -> bool:
        return self._path(item).is_file()

    def stats(self) -> Dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "writes": self.writes,
                "refused": self.refused, "corrupt": self.corrupt}

    # -- reading --------------------------------------------------------------------------
    def get(self, item: str):
        """The arrays ``put`` stored for ``item`` as float32 CPU tensors, or None when absent (or
        corrupt: then warned about, deleted and counted)."""
        path = self._path(item)
        try:
            fh = open(path, "rb", buffering=0)
        except FileNotFoundError:
            self.misses += 1
            return None
        import numpy as np

        with fh:
            st = os.fstat(fh.fileno())
            size = st.st_size
            buf = np.empty(size, dtype=np.uint8)
            view = memoryview(buf)
            got = 0
            while got < size:
                n = fh.readinto(view[got:])
                if not n:
                    break
                got += n
            try:
                if got != size:
                    raise ValueError(f"read {got} of {size} bytes")
                arrays = self._parse(buf, item, size)
            except ValueError as exc:
                self._bad(path, st, exc)
                return None
        import torch

        if self.dtype == "bf16":
            out = [torch.from_numpy(a.view(np.int16)).view(torch.bfloat16).float() for a in arrays]
        elif self.dtype == "fp16":
            out = [torch.from_numpy(a).float() for a in arrays]  # 10x faster than numpy astype
        else:
            out = [torch.from_numpy(a) for a in arrays]
        self.hits += 1
        return out

    def _parse(self, buf, item: str, size: int) -> list:
        """The arrays of an entry file's bytes ``buf``; ValueError saying what is wrong."""
        if size < _FIXED.size:
            raise ValueError(f"{size} bytes, shorter than the header")
        magic, version, hlen = _FIXED.unpack_from(buf, 0)
        if magic != MAGIC:
            raise ValueError("not a feature store entry (bad magic)")
        if version != FORMAT_VERSION:
            raise ValueError(f"entry format version {version}, expected {FORMAT_VERSION}")
        if _FIXED.size + hlen > size:
            raise ValueError("truncated header")
        try:
            head = json.loads(bytes(buf[_FIXED.size:_FIXED.size + hlen]))
            shapes, offsets, promised = head["shapes"], head["offsets"], head["size"]
            h_item, h_dtype = head["item"], head["dtype"]
        except (ValueError, KeyError, TypeError):
            raise ValueError("unreadable header") from None
        if promised != size:
            raise ValueError(f"{size} bytes, the header promises {promised} (truncated or overwritten)")
        if h_item != item or h_dtype != self.dtype:
            raise ValueError(f"holds item {h_item!r} as {h_dtype}, expected {item!r} as {self.dtype}")
        if not isinstance(shapes, list) or not isinstance(offsets, list) or len(shapes) != len(offsets):
            raise ValueError("inconsistent header")
        itemsize = _ITEMSIZE[self.dtype]
        arrays = []
        for shape, off in zip(shapes, offsets):
            if not isinstance(off, int) or not isinstance(shape, list) or not all(
                    isinstance(s, int) and s >= 0 for s in shape):
                raise ValueError("inconsistent header")
            count = 1
            for s in shape:
                count *= s
            if off < _FIXED.size + hlen or off % itemsize or off + count * itemsize > size:
                raise ValueError("array outside the file")
            arrays.append(buf[off:off + count * itemsize].view(self._np_dtype).reshape(shape))
        return arrays

    def _bad(self, path: Path, st, exc: Exception) -> None:
        warnings.warn(f"feature store entry {path} is corrupt ({exc}); deleted, it will be recomputed",
                      RuntimeWarning, stacklevel=3)
        try:  # delete it unless another process has replaced it meanwhile
            now = os.stat(path)
            if (now.st_ino, now.st_dev) == (st.st_ino, st.st_dev):
                os.unlink(path)
        except OSError:
            pass
        self.corrupt += 1
        self.misses += 1

    def get_many(self, items) -> list:
        return [self.get(item) for item in items]

    # -- writing --------------------------------------------------------------------------
    def _encode(self, arrays) -> list:
        """numpy arrays in the namespace dtype (C order, little-endian)."""
        import numpy as np
        import torch

        out = []
        for a in arrays:
            t = a if isinstance(a, torch.Tensor) else torch.as_tensor(np.asarray(a))
            t = t.detach()
            if t.is_complex() or t.dtype == torch.bool:
                raise StoreError(f"feature store arrays must be real numbers, got {t.dtype}")
            if self.dtype == "fp32":
                t = t.to("cpu", torch.float32)
                n = t.contiguous().numpy()
            elif self.dtype == "fp16":
                n = t.to("cpu", torch.float16).contiguous().numpy()
            else:
                n = t.to("cpu", torch.bfloat16).contiguous().view(torch.int16).numpy().view(np.uint16)
            if n.dtype.byteorder == ">":  # pragma: no cover - big-endian hosts
                n = n.byteswap().view(n.dtype.newbyteorder("<"))
            out.append(n)
        return out

    def put(self, item: str, arrays: Sequence) -> bool:
        """Store ``arrays`` (tensors of any shapes) for ``item`` in the namespace dtype. False (and
        nothing written) when the store's ``max_bytes`` would be exceeded or the disk is full."""
        path = self._path(item)
        arrays = self._encode(list(arrays))
        itemsize = _ITEMSIZE[self.dtype]
        shapes = [list(a.shape) for a in arrays]
        # the header's length depends on the offsets, which depend on it: settle on a padded length
        hlen = 0
        while True:
            offsets, end = [], _FIXED.size + hlen
            for a in arrays:
                offsets.append(_align(end))
                end = offsets[-1] + a.size * itemsize
            total = end
            head = json.dumps({"item": item, "dtype": self.dtype, "shapes": shapes, "offsets": offsets,
                               "size": total}, separators=(",", ":")).encode("ascii")
            need = _align(_FIXED.size + len(head)) - _FIXED.size
            if need <= hlen:
                break
            hlen = need
        head = head.ljust(hlen, b" ")
        try:
            replaced = os.stat(path).st_size
        except OSError:
            replaced = 0
        if not self.store._reserve(total, replaced):
            self.refused += 1
            return False
        for attempt in (0, 1):
            try:
                self._write(path, head, arrays, offsets, total)
                break
            except FileNotFoundError:
                if attempt:  # the namespace folder vanished twice (cleared meanwhile): give up
                    self._unreserve(total, replaced)
                    self.refused += 1
                    return False
                self._ensure_identity()  # cleared while we ran: recreate the folder
            except OSError as exc:
                self._unreserve(total, replaced)
                if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    if not self.store._warned_disk:
                        self.store._warned_disk = True
                        warnings.warn(f"feature store {self.store.root}: {os.strerror(exc.errno)}; "
                                      "entries not stored are recomputed", RuntimeWarning, stacklevel=2)
                    self.refused += 1
                    return False
                raise OSError(exc.errno, f"writing feature store entry {path} failed: {exc.strerror or exc}") from None
        self.writes += 1
        return True

    def _unreserve(self, total: int, replaced: int) -> None:
        if self.store._tracked is not None:
            self.store._tracked -= total - replaced

    def _write(self, path: Path, head: bytes, arrays: list, offsets: list, total: int) -> None:
        folder = path.parent
        try:
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
        except FileNotFoundError:
            if not self.dir.is_dir():
                raise
            folder.mkdir(exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
        try:
            with open(fd, "wb") as fh:
                pos = fh.write(_FIXED.pack(MAGIC, FORMAT_VERSION, len(head)))
                pos += fh.write(head)
                for a, off in zip(arrays, offsets):
                    if off > pos:
                        pos += fh.write(b"\0" * (off - pos))
                    pos += fh.write(memoryview(a).cast("B")) if a.size else 0
                if pos < total:
                    fh.write(b"\0" * (total - pos))
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise


# -- command line ------------------------------------------------------------------------------
def _upstream_name(identity) -> str:
    if not isinstance(identity, Mapping):
        return "?"
    up = identity.get("upstream", identity.get("upstream_name", identity.get("name")))
    if isinstance(up, Mapping):
        up = up.get("name")
    return "-" if up is None else str(up)


def _short(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(v, int) for v in value) and list(value) == list(range(value[0], value[-1] + 1)):
            return f"{value[0]}-{value[-1]}" if len(value) > 1 else str(value[0])
        return ",".join(str(v) for v in value)
    return str(value)


def cmd_cache_info(args) -> int:
    store = FeatureStore(default_store_dir(args.cache_dir))
    infos = store.info()
    if not infos:
        print(f"feature store {store.root}: empty")
        return 0
    rows = [("key", "upstream", "layers", "kind", "dtype", "entries", "MB", "last used")]
    for ns in infos:
        ident = ns["identity"] if isinstance(ns["identity"], Mapping) else {}
        last = time.strftime("%Y-%m-%d %H:%M", time.localtime(ns["last_used"])) if ns["last_used"] else "-"
        rows.append((ns["key"], _upstream_name(ns["identity"]), _short(ident.get("layers")), _short(ident.get("kind")),
                     ns["dtype"] or "?", str(ns["entries"]), f"{ns['bytes'] / 1e6:.1f}", last))
    right = {5, 6}
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip())
    entries = sum(ns["entries"] for ns in infos)
    size = sum(ns["bytes"] for ns in infos)
    print(f"total: {len(infos)} namespace{'s' * (len(infos) != 1)}, {entries} entries, {size / 1e6:.1f} MB")
    print(f"store: {store.root}")
    return 0


def cmd_cache_clear(args) -> int:
    store = FeatureStore(default_store_dir(args.cache_dir))
    what = f"namespace(s) {', '.join(args.key)}" if args.key else "all cached features"
    if not args.yes:
        if not sys.stdin.isatty():
            print(f"superb cache clear: refusing to delete {what} in {store.root} without --yes "
                  "(not an interactive shell); pass --yes", file=sys.stderr)
            return 2
        answer = input(f"delete {what} in {store.root}? [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            print("nothing deleted")
            return 1
    removed, freed = store.clear(args.key or None)
    print(f"removed {removed} namespace{'s' * (removed != 1)}, freed {freed / 1e6:.1f} MB from {store.root}")
    return 0


def _cache_parser(p) -> None:
    actions = p.add_subparsers(dest="cache_command", required=True)
    info = actions.add_parser("info", help="list the cached namespaces, their sizes and the store path")
    info.add_argument("--cache-dir", help="the cache folder of `superb run --cache-dir` "
                      "(default $SUPERB_CACHE_DIR, else $XDG_CACHE_HOME/superb, else ~/.cache/superb)")
    info.set_defaults(func=cmd_cache_info)
    clear = actions.add_parser("clear", help="delete cached features (all, or the namespaces --key names)")
    clear.add_argument("--cache-dir", help="the cache folder of `superb run --cache-dir`")
    clear.add_argument("--key", action="append", metavar="K", help="a namespace key or unique prefix (repeatable)")
    clear.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    clear.set_defaults(func=cmd_cache_clear)


def register(sub) -> None:
    p = sub.add_parser("cache", help="show or clear the store of cached frozen-upstream features")
    _cache_parser(p)
