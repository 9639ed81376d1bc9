"""The Ray side of the executor layer: session, per-case tasks, a writability probe.

Ray itself is imported only when ``--executor ray`` runs (:func:`import_ray`, called by the
functions that need it), so a core install never imports Ray. Each case is one Ray task; Ray
retries a task whose worker process dies (``max_retries``), never one that raised: an error in a
case is re-raised here as the case's own exception, the same one line as with the local executor.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from nnunet_ext._workers import progress, worker_name

__all__ = [
    "INSTALL_HINT",
    "TASK_RETRIES",
    "RayMissingError",
    "check_writable_from_worker",
    "import_ray",
    "map_cases_ray",
    "ray_session",
    "reraise_cause",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

#: How to get Ray (the optional extra).
INSTALL_HINT = 'pip install "nnunet_ext[ray]"'

#: Times Ray re-runs a case whose worker process died (a case that raised is not re-run).
TASK_RETRIES = 3


class RayMissingError(ValueError):
    """``--executor ray`` without Ray installed."""


def import_ray() -> Any:
    """Import and return the ``ray`` module.

    Raises:
        RayMissingError: If Ray is not installed (the message says how to install it).
    """
    try:
        import ray
    except ImportError:
        raise RayMissingError(
            f"executor ray needs Ray, which is not installed; install it with: {INSTALL_HINT}"
        ) from None
    return ray


@contextlib.contextmanager
def ray_session(address: str | None) -> Iterator[Any]:
    """Connect to Ray for the duration of the block; yields the ``ray`` module.

    An already connected Ray (a notebook's or a test's ``ray.init``) is used as it is. Otherwise
    ``address=None`` starts a local Ray (stopped at the end of the block) and ``auto`` or
    ``HOST:PORT`` joins that cluster (left running).
    """
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    options: dict[str, Any] = {"logging_level": logging.WARNING}
    if address is None:
        ray.init(include_dashboard=False, **options)
    else:
        ray.init(address=address, **options)
    try:
        yield ray
    finally:
        ray.shutdown()


def reraise_cause(ray: Any, err: BaseException) -> None:
    """Re-raise a failed task's own exception (one line, as locally).

    A worker process that died more often than Ray retries becomes one ``ChildProcessError`` line.
    """
    if isinstance(err, ray.exceptions.RayTaskError) and isinstance(err.cause, BaseException):
        raise err.cause from None
    if isinstance(err, (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError)):
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ChildProcessError(
            f"a Ray worker process died {TASK_RETRIES + 1} times (killed, or out of memory?): "
            f"{first} Rerun to resume; finished cases are kept."
        ) from None
    raise err


def _run_item(function: Callable[[Any], Any], item: Any) -> tuple[str, Any]:
    return worker_name(), function(item)


def _completed(ray: Any, refs: Sequence[Any]) -> Iterator[Any]:
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        yield from done


def map_cases_ray(
    function: Callable[[T], R], items: Sequence[T], *, address: str | None, desc: str = ""
) -> list[R]:
    """:func:`nnunet_ext._parallel.map_cases` on Ray: one task per item, results in input order.

    Raises:
        Exception: The first failing item's own exception.
    """
    results: list[Any] = [None] * len(items)
    if not items:
        return results
    with ray_session(address) as ray:
        start = time.perf_counter()
        task = ray.remote(max_retries=TASK_RETRIES)(_run_item)
        shared = ray.put(function)
        index = {task.remote(shared, item): i for i, item in enumerate(items)}
        workers: Counter[str] = Counter()
        try:
            for ref in progress(_completed(ray, list(index)), total=len(items), desc=desc):
                try:
                    workers[(out := ray.get(ref))[0]] += 1
                except Exception as err:
                    reraise_cause(ray, err)
                results[index[ref]] = out[1]
        except BaseException:
            for ref in index:
                with contextlib.suppress(Exception):
                    ray.cancel(ref)
            raise
        logger.info(
            "%s: %d case(s) on %d Ray worker(s) in %.1f s (%s)",
            desc or "ray",
            len(items),
            len(workers),
            time.perf_counter() - start,
            ", ".join(f"{w}: {n}" for w, n in sorted(workers.items())),
        )
    return results


def _probe(folder: str) -> str:
    """Create and remove a file in ``folder``; return ``""`` or the error, naming the host."""
    path = Path(folder) / f".nnunet_ext-probe-{uuid.uuid4().hex}"
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        os.close(fd)
        path.unlink()
    except OSError as err:
        return f"host {socket.gethostname()}: {err.strerror or err}"
    return ""


def check_writable_from_worker(ray: Any, folder: Path) -> None:
    """Check on a Ray worker that ``folder`` (the output) can be written there.

    Raises:
        PermissionError: If a worker cannot create a file in ``folder`` (the message says that
            inputs and outputs must be on a filesystem every node sees).
    """
    error = ray.get(ray.remote(num_cpus=0)(_probe).remote(str(Path(folder).resolve())))
    if error:
        raise PermissionError(
            f"output_dir {folder} is not writable from a Ray worker ({error}); inputs and "
            "outputs must be on a filesystem every Ray node sees at the same path (NFS, SMB, "
            "Lustre...)."
        )
