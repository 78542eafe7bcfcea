"""Files written safely: atomically, by one writer at a time, as strict JSON.

- :func:`atomic_write_bytes`: a temporary file beside the target, then a rename, so an
  interrupted write never leaves half a file; temporary files a killed writer left behind
  are removed by the next writer of the same file.
- :func:`exclusive`: the one-writer lock of a file (or a folder of parts). A second
  process that asks for it while the first holds it gets an error naming the holder,
  instead of two runs overwriting (and timing) each other.
- :func:`dumps_strict` / :func:`loads_strict`: JSON without NaN or infinities, which are
  not JSON and must never reach a verdict.

Explained in "How to read this book" (stored results).
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import glob
import json
import math
import os
import re
import tempfile
import time
from pathlib import Path

_HELD: dict[str, int] = {}  # lock file -> depth, in this process
_INODES: dict[str, int] = {}  # lock file -> the inode this process locked


class Busy(RuntimeError):
    """Another process holds the file's one-writer lock. Defined in "How to read this book"."""


def lock_path(path: str | os.PathLike) -> Path:
    """The lock file of ``path``: ``.NAME.lock`` beside it (ignored by git, removed on
    release). Defined in "How to read this book"."""
    path = Path(path).resolve()
    return path.with_name(f".{path.name}.lock")


@contextlib.contextmanager
def exclusive(path: str | os.PathLike, holder: str = "", wait: float = 0.0):
    """Hold the one-writer lock of ``path`` for the block (re-entrant within a process).

    Another process holding it: wait up to ``wait`` seconds, then raise :class:`Busy`
    naming the holder (its pid and command). On taking the lock, the leftovers of a
    writer that was killed are removed (``.NAME.XXXXXXXX.tmp`` of a write,
    ``.NAME.XXXXXXXX.probe`` of a check that the folder is writable, ``.STEM.joining.json``
    of an older sweep's join). Defined in "How to read this book".
    """
    if isinstance(wait, bool) or not isinstance(wait, (int, float)) or not wait >= 0 or wait == float("inf"):
        raise ValueError(f"wait must be a finite number of seconds >= 0, got {wait!r}")
    lock = lock_path(path)
    key = str(lock)
    if key in _HELD:
        _HELD[key] += 1
        try:
            yield lock
        finally:
            _HELD[key] -= 1
        return
    lock.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + float(wait)
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                os.close(fd)
                raise
            who = _read_holder(fd)
            os.close(fd)
            if time.monotonic() < deadline:
                time.sleep(0.05)
                continue
            raise Busy(f"{Path(path)} is being written by another process ({who or 'unknown holder'}); "
                       "wait for it to finish, or stop it, before writing there") from None
        # the holder before us may have removed the lock file as it released it: lock the file that is there now
        try:
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} since {now}{': ' + holder if holder else ''}\n".encode())
        _remove_leftovers(Path(path).resolve())
        _HELD[key] = 1
        _INODES[key] = os.fstat(fd).st_ino
        yield lock
    finally:
        _HELD.pop(key, None)
        if _INODES.pop(key, None) == _inode(lock):  # remove our own lock file, never another writer's
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock)
        os.close(fd)


def _inode(path: Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None


def _still_ours(path: Path) -> None:
    """Before a write under a held lock: refuse if the lock file was removed or replaced
    while held (``git clean -X``, a hand), since another writer may have taken it since."""
    key = str(lock_path(path))
    if key in _INODES and _inode(Path(key)) != _INODES[key]:
        raise Busy(f"the lock of {path} ({key}) was removed while this process held it; another writer may "
                   "be writing there now, so this one stops rather than overwrite it")


def _read_holder(fd: int) -> str:
    try:
        return os.pread(fd, 400, 0).decode(errors="replace").strip()
    except OSError:
        return ""


def _remove_leftovers(path: Path) -> list[Path]:
    """Remove the leftovers of ``path``'s own killed writers, and no other file's: a
    temporary name is ``.NAME.`` + mkstemp's 8 random characters + ``.tmp`` or ``.probe``."""
    own = re.compile(rf"\.{re.escape(path.name)}\.[a-z0-9_]{{8}}\.(tmp|probe)")
    removed = []
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*"):
        if own.fullmatch(stale.name):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
                removed.append(stale)
    joining = path.parent / f".{path.stem}.joining.json"
    if path.suffix == ".json" and joining.exists():
        with contextlib.suppress(FileNotFoundError):
            joining.unlink()
            removed.append(joining)
    return removed


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename, holding the file's
    lock (:func:`exclusive`, waiting up to a minute for another writer's short write).

    Defined in "How to read this book".
    """
    path = Path(path)
    if not path.name:
        raise ValueError(f"not a file path: {str(path)!r}")
    if not isinstance(data, (bytes, bytearray)):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    path = path.resolve()  # a link: write the file it points to, and keep the link
    path.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(path, "writing", wait=60.0):
        _still_ours(path)
        if path.exists():  # keep the file's mode (mkstemp makes 0600)
            mode = path.stat().st_mode & 0o777
        else:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            os.fchmod(fd, mode)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomic text write (UTF-8). Defined in "How to read this book"."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return atomic_write_bytes(path, text.encode("utf-8"))


def dumps_strict(payload) -> str:
    """``payload`` as indented JSON with sorted keys; a NaN or infinite number anywhere is
    refused, naming where it is. Defined in "How to read this book"."""
    from .verdicts import first_non_finite

    bad = first_non_finite(payload, "payload")
    if bad:
        raise ValueError(f"{bad} is not a finite number: results are stored as strict JSON, without NaN or "
                         "infinities (record a failed measurement as null, with the reason beside it)")
    return json.dumps(payload, indent=2, sort_keys=True, allow_nan=False) + "\n"


def _refuse_constant(name: str):
    raise ValueError(f"the JSON holds {name}, which is not a finite number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the JSON holds {text}, which is not a finite number")
    return value


def loads_strict(text: str, source: str = "the JSON"):
    """Parse JSON that must hold no ``NaN``, ``Infinity``, ``-Infinity`` or number too large
    for a float (``1e999``); an error names ``source``. Defined in "How to read this book"."""
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except ValueError as err:  # JSONDecodeError is a ValueError too
        raise ValueError(f"{source} is not strict JSON: {err}") from None
