"""Claim files: several processes (on one or many machines) share the cases of one output folder.

A process claims a case by creating ``<output>/.nnunet_ext-claims/<case>.claim`` with
``O_CREAT | O_EXCL``, which succeeds for exactly one process, also on NFS v3+ and SMB shares. The
file holds the owner's host name, process id and a random token; a background thread refreshes
its modification time (the heartbeat) while the owner works. A claim *expires* when

* its host is this host and its process is gone (or a zombie), or
* its heartbeat is older than ``timeout`` seconds (the only test possible for other hosts).

An expired claim is removed under a short break lock (``<case>.break``, also ``O_EXCL``) after
re-reading it, so two processes never both remove a claim and both take it. Nothing here imports
torch.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["CLAIMS_DIR", "Claim", "ClaimStore", "pid_alive"]

logger = logging.getLogger(__name__)

#: Folder (inside the output folder) holding the claim files.
CLAIMS_DIR = ".nnunet_ext-claims"

#: Age in seconds after which a break lock of a crashed breaker is removed.
_BREAK_LOCK_TIMEOUT = 30.0


def pid_alive(pid: int) -> bool:
    """Tell whether process ``pid`` runs on this host (a zombie counts as dead).

    Examples:
        >>> pid_alive(os.getpid())
        True
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError, IndexError):
        state = stat.read_text().rsplit(")", 1)[1].split()[0]
        return state not in {"Z", "X"}
    return True


@dataclass
class Claim:
    """A claim held by this process; refreshes its heartbeat until :meth:`release`.

    Attributes:
        case_id: The claimed case.
        path: The claim file.
        token: Random token written into the file (identifies this claim).
    """

    case_id: str
    path: Path
    token: str
    interval: float
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def start(self) -> None:
        """Start the heartbeat thread."""
        self._thread = threading.Thread(
            target=self._beat, name=f"claim-{self.case_id}", daemon=True
        )
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(OSError):
                os.utime(self.path)

    def held(self) -> bool:
        """Whether the claim file is still ours (not broken by another process)."""
        info = _read_claim(self.path)
        return info is not None and info.get("token") == self.token

    def release(self) -> None:
        """Stop the heartbeat and remove the claim file if it is still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.held():
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


def _read_claim(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # being written (or garbage): judged by its age only
    return data if isinstance(data, dict) else {}


class ClaimStore:
    """Claim files of one output folder.

    Args:
        output_dir: The shared output folder.
        timeout: Heartbeat age in seconds after which a claim expires.

    Examples:
        >>> import tempfile
        >>> store = ClaimStore(Path(tempfile.mkdtemp()), timeout=60)
        >>> claim = store.try_claim("case_0")
        >>> claim is not None, store.try_claim("case_0")
        (True, None)
        >>> claim.release()
        >>> store.try_claim("case_0") is not None
        True
    """

    def __init__(self, output_dir: Path, *, timeout: float = 600.0) -> None:
        if not timeout > 0:
            raise ValueError(f"claim timeout must be > 0 seconds; got {timeout!r}.")
        self.folder = Path(output_dir) / CLAIMS_DIR
        self.timeout = float(timeout)
        self.host = socket.gethostname()
        self.pid = os.getpid()
        #: Cases whose expired claim (left by a dead process) this store removed: the retries.
        self.retaken: list[str] = []

    def path(self, case_id: str) -> Path:
        """The claim file of ``case_id``."""
        return self.folder / f"{case_id}.claim"

    def expired(self, path: Path, info: dict[str, Any] | None = None) -> bool:
        """Whether the claim at ``path`` is left by a dead process (or gone)."""
        info = _read_claim(path) if info is None else info
        if info is None:
            return True
        try:
            age = time.time() - path.stat().st_mtime
        except FileNotFoundError:
            return True
        if age > self.timeout:
            return True
        pid = info.get("pid")
        if info.get("host") == self.host and isinstance(pid, int) and pid != self.pid:
            return not pid_alive(pid)
        return False

    def try_claim(self, case_id: str) -> Claim | None:
        """Claim ``case_id``; ``None`` if a live process holds it. Expired claims are retaken."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.path(case_id)
        for _ in range(2):
            token = uuid.uuid4().hex
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if not self._break_if_expired(path):
                    return None
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(
                    {"host": self.host, "pid": self.pid, "token": token, "created": time.time()},
                    handle,
                )
            claim = Claim(case_id, path, token, interval=max(self.timeout / 4, 0.05))
            claim.start()
            return claim
        return None

    def _break_if_expired(self, path: Path) -> bool:
        info = _read_claim(path)
        if info is None:
            return True  # released meanwhile
        if not self.expired(path, info):
            return False
        lock = path.with_suffix(".break")
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            with contextlib.suppress(FileNotFoundError):
                if time.time() - lock.stat().st_mtime > _BREAK_LOCK_TIMEOUT:
                    lock.unlink()  # its breaker crashed; the next attempt breaks again
            return False
        try:
            os.close(fd)
            again = _read_claim(path)
            # remove only the claim we judged expired, never one retaken meanwhile
            if again is not None and again.get("token") == info.get("token"):
                if not self.expired(path, again):
                    return False
                logger.warning(
                    "retaking the expired claim of %s (host %s, pid %s)",
                    path.stem,
                    again.get("host"),
                    again.get("pid"),
                )
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    self.retaken.append(path.stem)
            return True
        finally:
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()

    def cleanup(self) -> None:
        """Remove the claims folder if it is empty (other processes may still use it)."""
        with contextlib.suppress(OSError):
            self.folder.rmdir()
