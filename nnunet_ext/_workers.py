"""Names and progress shared by the local and the Ray executors.

Kept apart from :mod:`nnunet_ext._parallel` so that :mod:`nnunet_ext._ray` can use them without
importing the module that imports it (the package has no import cycle).
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

__all__ = ["progress", "worker_name"]

T = TypeVar("T")


def worker_name() -> str:
    """``host:pid`` of this process: how run summaries name a worker."""
    return f"{socket.gethostname()}:{os.getpid()}"


def progress(iterable: Iterable[T], *, total: int | None = None, desc: str = "") -> Iterator[T]:
    """Wrap ``iterable`` in a tqdm bar on stderr (shown only on a terminal)."""
    from tqdm import tqdm

    yield from tqdm(iterable, total=total, desc=desc, file=sys.stderr, disable=None, leave=False)
