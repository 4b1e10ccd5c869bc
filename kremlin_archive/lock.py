"""One run at a time on a database: an exclusive `flock` on `<db>.lock`, taken by every command
that writes the database (crawls, reparse, import) before it opens anything."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class DatabaseLocked(RuntimeError):
    """Another run holds this database."""


class RunLock:
    """An exclusive, non-blocking `flock` on `<db>.lock`; released when the process dies, so a
    SIGKILLed run never leaves a stale lock behind."""

    def __init__(self, db_path: str | Path):
        self.path = Path(f"{db_path}.lock")
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = self.path.read_text(errors="replace").strip() or "another process"
            raise DatabaseLocked(
                f"another run is using this database ({holder}); lock file {self.path}"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
