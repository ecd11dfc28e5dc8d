"""Reading and writing the files of a run and of a corpus, with errors that name the file.

* Every write that produces a finished file goes through :func:`atomic_write_bytes` (and the
  text, JSON and ``torch.save`` wrappers): the content goes to a temporary file with a unique
  name in the target's folder (``.<name>.<random>.tmp``; two writers never share one), which
  then replaces the target. A failed write removes its temporary file; a full disk is reported
  as ``no space left on device while writing <path>``.
* A finished directory (a mini-corpus split, the private eSpeak data folder) is built inside
  :func:`atomic_directory`: in a temporary sibling (``.<name>.tmp-<random>``) renamed into place
  at the end, so a half-built directory is never seen under the final name.
* :func:`append_line` appends one line to a log, naming the file when that fails;
  :func:`rewind_log` drops a ``log.jsonl``'s lines past a resumed step.
* :func:`read_text` reads a UTF-8 text file (list files, transcripts, label files); a file in
  another encoding is an error naming the file and the byte offset.
* :func:`read_json` reads a JSON file; a truncated or invalid one is an error naming the file.
* :func:`default_cache_dir`: where superb keeps what it builds (mini corpus, feature store,
  listings).
"""
from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator, Union

PathLike = Union[str, os.PathLike]

#: suffix of every temporary file written by :func:`atomic_write_bytes`
TMP_SUFFIX = ".tmp"


def default_cache_dir() -> Path:
    """``$SUPERB_CACHE_DIR``, else ``$XDG_CACHE_HOME/superb``, else ``~/.cache/superb``."""
    env = os.environ.get("SUPERB_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "superb"
    return Path.home() / ".cache" / "superb"


def _write_all(fh, data: bytes) -> None:
    """Write ``data`` to the open binary file ``fh`` (a separate function so tests can fail it)."""
    fh.write(data)


def _disk_error(exc: OSError, path: Path, action: str) -> OSError:
    if exc.errno == errno.ENOSPC:
        return OSError(errno.ENOSPC, f"no space left on device while {action} {path}")
    if exc.errno == errno.EDQUOT:
        return OSError(errno.EDQUOT, f"disk quota exceeded while {action} {path}")
    return OSError(exc.errno, f"{action} {path} failed: {exc.strerror or exc}")


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (unique temporary file, then ``os.replace``)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as fh:
            _write_all(fh, data)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise _disk_error(exc, path, "writing") from exc
        raise
    return path


def atomic_write_text(path: PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_torch_save(obj: Any, path: PathLike) -> Path:
    """``torch.save`` to memory, then :func:`atomic_write_bytes` (so disk errors are OSErrors)."""
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())


@contextlib.contextmanager
def atomic_directory(target: PathLike, concurrent_winner_ok: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of ``target`` to fill; rename it to ``target`` when the block ends
    without an error, delete it in every case. ``concurrent_winner_ok``: another process renaming
    its own copy into place first is not an error (the copies are identical)."""
    target = Path(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
        try:
            os.rename(tmp, target)
        except OSError:
            if not (concurrent_winner_ok and target.is_dir()):
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def append_line(path: PathLike, line: str) -> None:
    path = Path(path)
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(line.rstrip("\n") + "\n")
    except OSError as exc:
        raise _disk_error(exc, path, "appending to") from exc


def remove_stale_tmp(folder: PathLike) -> list:
    """Remove temporary files left in ``folder`` by a killed writer; returns their paths."""
    removed = []
    folder = Path(folder)
    if folder.is_dir():
        for p in folder.glob(f".*{TMP_SUFFIX}"):
            p.unlink()
            removed.append(p)
    return removed


def rewind_log(path: PathLike, step: int) -> None:
    """Keep the lines of a JSON-lines log whose ``step`` is at most ``step`` (a killed run may have
    logged past its last save; those steps are logged again on resume). A line cut by the kill,
    or one without a whole-number step, is dropped. A missing log is left missing."""
    path = Path(path)
    if not path.is_file():
        return
    kept = []
    for line in read_text(path).splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("step"), int) and entry["step"] <= step:
            kept.append(line)
    atomic_write_text(path, "".join(line + "\n" for line in kept))


def read_text(path: PathLike) -> str:
    """A UTF-8 text file's content; other encodings are an error naming the file."""
    path = Path(path)
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
            "convert the file to UTF-8"
        ) from None


def read_lines(path: PathLike) -> Iterable[str]:
    return read_text(path).splitlines()


def read_json(path: PathLike) -> Any:
    """A JSON file's content; a truncated or invalid file is an error naming it."""
    path = Path(path)
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        what = "empty" if not text.strip() else "truncated or invalid JSON"
        raise ValueError(f"{path}: {what} ({exc.msg} at line {exc.lineno} column {exc.colno})") from None


class LockedError(OSError):
    """Another process holds the lock of a folder."""


class DirectoryLock:
    """An exclusive, non-blocking lock on ``<folder>/.superb.lock`` held for a run's lifetime.

    POSIX ``fcntl.flock`` (``filelock`` where ``fcntl`` does not exist): the operating system
    releases it when the process dies, so a killed run never leaves a stale lock behind. The
    file holds the owner's pid, which the refusal message of a second run names.
    """

    NAME = ".superb.lock"

    def __init__(self, folder: PathLike):
        self.folder = Path(folder)
        self.path = self.folder / self.NAME
        self._fh = None
        self._fallback = None

    def acquire(self) -> "DirectoryLock":
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            import fcntl
        except ImportError:  # pragma: no cover - non-POSIX
            import filelock

            self._fallback = filelock.FileLock(str(self.path) + ".filelock")
            try:
                self._fallback.acquire(timeout=0)
            except filelock.Timeout:
                raise LockedError(f"{self.folder} is in use by another superb run") from None
            return self
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            pid = fh.read().strip() or "unknown"
            fh.close()
            raise LockedError(f"{self.folder} is in use by another superb run (pid {pid})") from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh
        return self

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()  # closing the descriptor releases the flock
            self._fh = None
        if self._fallback is not None:  # pragma: no cover
            self._fallback.release()
            self._fallback = None

    def __enter__(self) -> "DirectoryLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
