"""One writer per output folder: a lock file that names its holder and dies with its process.

Every folder a command writes into holds :data:`LOCK_NAME` while the command runs
(:func:`~nnunet_ext.io.outputs.guard_outputs` takes it). A second run refuses at once, naming
the process that holds it; a lock left by a killed process on this host is taken over (the lock
is an ``flock`` that the kernel releases when its process dies).
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import json
import os
import socket
from pathlib import Path

__all__ = ["LOCK_NAME", "OutputLock", "OutputLockedError", "remove_dead_lock"]

#: Lock file in every folder a command writes into (hidden, so folder scans skip it).
LOCK_NAME = ".nnunet_ext.lock"


class OutputLockedError(OSError):
    """Another run is writing the same output folder."""


def _describe_holder(text: str) -> tuple[str, dict[str, object]]:
    try:
        info = json.loads(text)
    except ValueError:
        info = None
    if not isinstance(info, dict):
        return "an unknown process", {}
    parts = [f"pid {info.get('pid')} on host {info.get('host')}"]
    if info.get("command"):
        parts.append(f"running {info['command']!r}")
    if info.get("started"):
        parts.append(f"since {info['started']}")
    return ", ".join(parts), info


class OutputLock:
    """An exclusive, non-blocking lock on an output folder (``<folder>/.nnunet_ext.lock``).

    The lock is an ``flock`` on the lock file, which records the holder's pid, host, command
    and start time for the message a second run prints. The kernel drops the ``flock`` when its
    process dies (``kill -9`` included), so a lock file left by a dead process on this host is
    simply taken over. A lock file naming another host is refused while that host might still
    be writing (shared file systems do not always carry ``flock``): delete it by hand then.

    Args:
        folder: The output folder (must exist).
        command: What is running, for the holder description.

    Examples:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> with OutputLock(folder, "demo"):
        ...     (folder / LOCK_NAME).is_file()
        True
        >>> (folder / LOCK_NAME).exists()
        False
    """

    def __init__(self, folder: str | os.PathLike[str], command: str = "") -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.command = command
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise :class:`OutputLockedError` at once."""
        import fcntl  # POSIX only: imported where a lock is taken, so io imports everywhere

        host = socket.gethostname()
        for _ in range(20):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                if err.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    os.close(fd)
                    raise
                holder, _ = _describe_holder(_read_fd(fd))
                os.close(fd)
                raise OutputLockedError(
                    f"{self.folder} is being written by another run ({holder}); wait for it to "
                    f"finish or choose another output. Lock file: {self.path}"
                ) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # the holder removed the file between our open and flock: retry
                os.close(fd)
                continue
            holder, info = _describe_holder(_read_fd(fd))
            other_host = info.get("host")
            if info and other_host != host and _pid_may_live(info):
                os.close(fd)
                raise OutputLockedError(
                    f"{self.folder} is locked by a run on another host ({holder}); if that run "
                    f"is gone, delete {self.path} and retry."
                )
            record = {
                "pid": os.getpid(),
                "host": host,
                "command": self.command,
                "started": datetime.datetime.now().isoformat(timespec="seconds"),
            }
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
            self._fd = fd
            return
        raise OutputLockedError(f"{self.folder}: could not take the lock {self.path}; retry.")

    def release(self) -> None:
        """Remove the lock file and drop the lock."""
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> OutputLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def remove_dead_lock(folder: str | os.PathLike[str]) -> bool:
    """Remove ``folder``'s lock file if no process holds it (its holder died) and it is ours.

    For library calls that write a folder without the command-line lock (the Python API), so a
    run killed there leaves nothing behind either. A lock held by a live run, or recorded by
    another host, is left alone.

    Returns:
        Whether a lock file was removed.
    """
    import fcntl

    path = Path(folder) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # held: a live run
        _, info = _describe_holder(_read_fd(fd))
        if info.get("host") not in (None, socket.gethostname()):
            return False
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            return False
        if same:
            path.unlink()
        return same
    finally:
        os.close(fd)


def _read_fd(fd: int) -> str:
    try:
        return os.pread(fd, 4096, 0).decode("utf-8", "replace")
    except OSError:
        return ""


def _pid_may_live(info: dict[str, object]) -> bool:
    """A record from another host: we cannot check its pid, so assume it lives."""
    return bool(info.get("pid"))
