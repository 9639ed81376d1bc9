"""Run one function over many cases: sequentially, in a local pool, or on Ray.

The executor layer of every per-case command. :class:`Executor` names where the cases run:
``local`` (this machine: one process, or ``-j N`` workers, the default) or ``ray`` (tasks on a Ray
cluster, see :mod:`nnunet_ext._ray`). Commands add ``--executor`` and ``--ray-address`` with
:func:`add_executor_arguments`, read them back with :func:`executor_from_args` and run their cases
with :func:`map_cases`, so ``-j``/``--executor`` mean the same everywhere: ``-j N`` runs at most N
cases at a time on this machine (a spawn pool of processes, or threads for a command whose cases
release the GIL), and with Ray each case is one task and the cluster sets the parallelism. Nothing
here imports Ray; it is imported only when an executor of kind ``ray`` runs.
"""

from __future__ import annotations

import argparse
import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, TypeVar

from nnunet_ext._ray import import_ray, map_cases_ray
from nnunet_ext._workers import progress, worker_name

__all__ = [
    "EXECUTORS",
    "Executor",
    "add_executor_arguments",
    "executor_from_args",
    "map_cases",
    "progress",
    "worker_name",
]

T = TypeVar("T")
R = TypeVar("R")

#: The executor kinds ``--executor`` accepts.
EXECUTORS = ("local", "ray")


@dataclass(frozen=True)
class Executor:
    """Where per-case work runs.

    Attributes:
        kind: ``local`` (this machine, ``num_workers`` processes) or ``ray``.
        address: Ray only: ``None`` starts a local Ray for the run (stopped afterwards);
            ``auto`` joins the cluster this machine is part of (``ray start``); ``HOST:PORT``
            joins that cluster's head.

    Examples:
        >>> Executor().is_ray
        False
        >>> Executor("ray", "auto").is_ray
        True
        >>> Executor("dask")
        Traceback (most recent call last):
        ...
        ValueError: executor must be one of local, ray; got 'dask'.
    """

    kind: str = "local"
    address: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in EXECUTORS:
            choices = ", ".join(EXECUTORS)
            raise ValueError(f"executor must be one of {choices}; got {self.kind!r}.")
        if self.address is not None and self.kind != "ray":
            raise ValueError(
                f"ray_address {self.address} is for the Ray executor only (executor ray); got "
                f"executor {self.kind}."
            )

    @property
    def is_ray(self) -> bool:
        """Whether the cases run on Ray."""
        return self.kind == "ray"


def add_executor_arguments(parser: argparse.ArgumentParser, *, actors: bool = False) -> None:
    """Add ``--executor {local,ray}`` and ``--ray-address`` to a per-case command's parser.

    With ``actors`` (a command whose Ray workers are actors holding a model), also
    ``--ray-cpus-per-worker N``.
    """
    parser.add_argument(
        "--executor",
        choices=EXECUTORS,
        default="local",
        help="where the cases run: this machine (local, -j processes) or a Ray cluster (ray; "
        'needs pip install "nnunet_ext[ray]")',
    )
    parser.add_argument(
        "--ray-address",
        default=None,
        metavar="auto|HOST:PORT",
        help="with --executor ray: join this cluster ('auto': the one started with ray start on "
        "this machine); default: start a local Ray for this run",
    )
    if actors:
        parser.add_argument(
            "--ray-cpus-per-worker",
            type=int,
            default=1,
            metavar="N",
            help="with --executor ray on CPU-only nodes: CPUs (and torch threads) of one actor",
        )


def executor_from_args(args: argparse.Namespace) -> Executor:
    """The :class:`Executor` of parsed ``--executor``/``--ray-address`` (local if absent).

    With ``ray`` this checks that Ray is installed.

    Raises:
        ValueError: ``--ray-address`` without ``--executor ray``, or Ray is not installed (one line
            saying how to install it).
    """
    executor = Executor(getattr(args, "executor", "local"), getattr(args, "ray_address", None))
    if executor.is_ray:
        import_ray()
    return executor


def map_cases(
    function: Callable[[T], R],
    items: Sequence[T],
    *,
    num_workers: int = 1,
    desc: str = "",
    executor: Executor | None = None,
    threads: bool = False,
) -> list[R]:
    """Apply ``function`` to each item and return the results in input order.

    With ``num_workers <= 1`` everything runs in this process (no pool, easy to debug and safe
    in notebooks). Otherwise a ``spawn`` pool is used, as nnU-Net does on every OS, so
    ``function`` must be a picklable top-level callable and the caller's script needs an
    ``if __name__ == "__main__":`` guard; with ``threads``, a pool of ``num_workers`` threads
    in this process instead (for work that releases the GIL, e.g. inflating and numpy). With a
    Ray ``executor`` every item is one Ray task (retried by Ray if its worker dies;
    ``num_workers`` and ``threads`` are then ignored: the cluster's CPUs set the parallelism);
    results and errors are the same as local ones. The first item that raises stops the run
    (items not started are cancelled) with its own exception.

    Args:
        function: Top-level function of one argument.
        items: The work items (picklable).
        num_workers: Number of processes (threads with ``threads``); capped at ``len(items)``.
        desc: Progress bar label (and the threads' name prefix).
        executor: Where to run (default: local).
        threads: Run the local workers as threads of this process, not spawned processes.

    Returns:
        ``[function(item) for item in items]``.

    Examples:
        >>> map_cases(abs, [-1, 2, -3])
        [1, 2, 3]
        >>> map_cases(abs, [-1, 2, -3], num_workers=2, threads=True)
        [1, 2, 3]
    """
    if executor is not None and executor.is_ray:
        return map_cases_ray(function, items, address=executor.address, desc=desc)
    workers = min(int(num_workers), len(items))
    if workers <= 1:
        return [function(item) for item in progress(items, total=len(items), desc=desc)]
    if threads:
        return _map_threads(function, items, workers, desc)
    context = multiprocessing.get_context("spawn")
    results: list[Any] = [None] * len(items)
    with context.Pool(workers) as pool:
        indexed = pool.imap_unordered(
            _call_indexed, [(function, i, item) for i, item in enumerate(items)]
        )
        for index, result in progress(indexed, total=len(items), desc=desc):
            results[index] = result
    return results


def _map_threads(
    function: Callable[[T], R], items: Sequence[T], workers: int, desc: str
) -> list[R]:
    """:func:`map_cases` on ``workers`` threads; on an error, cancel what has not started."""
    results: list[Any] = [None] * len(items)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=desc or "cases") as pool:
        futures = {pool.submit(function, item): index for index, item in enumerate(items)}
        try:
            for future in progress(as_completed(futures), total=len(futures), desc=desc):
                results[futures[future]] = future.result()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return results


def _call_indexed(job: tuple[Callable[[Any], Any], int, Any]) -> tuple[int, Any]:
    function, index, item = job
    return index, function(item)
