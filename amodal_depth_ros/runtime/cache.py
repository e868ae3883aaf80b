"""The on-disk cache that processes share: where it is, what names its files, and how they are written.

A node and ``amodal-depth engines`` (or two nodes) may fill the same cache at once. Every writer of a
cached file holds that file's lock (``file_lock``: an flock, released by the kernel when a process
dies, so a killed build never blocks the next one), writes under a unique temporary name and renames
it into place (``atomic_write``); whoever takes a lock next deletes the temporary files a killed
writer left (``remove_temps``).
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

def cache_dir() -> Path:
    """$AMODAL_DEPTH_CACHE, else $XDG_CACHE_HOME/amodal_depth_ros, else ~/.cache/amodal_depth_ros."""
    explicit = os.environ.get("AMODAL_DEPTH_CACHE")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "amodal_depth_ros"


def weights_digest(weights: Path) -> str:
    """The weights file's sha256 (16 hex digits), part of its cached graphs' names."""
    return hashlib.sha256(Path(weights).read_bytes()).hexdigest()[:16]


@contextlib.contextmanager
def file_lock(path: Path, what: str = "") -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing, never deleted: deleting a lock file races with
    the next process opening it). Every open takes its own lock, so threads of one process exclude each
    other too. Logs once when another holder makes it wait."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Read-only suffices for flock: a lock file another user created (a prebuilt cache) can still be taken.
    fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.warning("waiting for another process or thread %s (lock %s)", what or "using the cache", path)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)   # closing releases the lock


def temp_path(path: Path) -> Path:
    """A new, unique temporary file beside ``path`` that ``remove_temps(path.parent, path.name)`` matches."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    return Path(tmp)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a unique temporary file and a rename: a reader sees the old file or
    the complete new one, and concurrent writers never share a temporary file."""
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_temps(directory: Path, prefix: str) -> list[Path]:
    """Delete the temporary files of ``prefix`` that a killed writer left in ``directory``; call it holding
    the lock those writers hold (a live writer's file would go too). Returns what was deleted."""
    stale = sorted(Path(directory).glob(f".{prefix}*.tmp"))
    for path in stale:
        log.warning("deleting %s, left by an interrupted write", path)
        path.unlink(missing_ok=True)
    return stale
