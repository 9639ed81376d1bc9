"""Run one function over many cases: sequentially, or in a spawn pool like nnU-Net."""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

__all__ = ["map_cases", "progress"]

T = TypeVar("T")
R = TypeVar("R")


def progress(iterable: Iterable[T], *, total: int | None = None, desc: str = "") -> Iterator[T]:
    """Wrap ``iterable`` in a tqdm bar on stderr (shown only on a terminal)."""
    from tqdm import tqdm

    yield from tqdm(iterable, total=total, desc=desc, file=sys.stderr, disable=None, leave=False)


def map_cases(
    function: Callable[[T], R],
    items: Sequence[T],
    *,
    num_workers: int = 1,
    desc: str = "",
) -> list[R]:
    """Apply ``function`` to each item and return the results in input order.

    With ``num_workers <= 1`` everything runs in this process (no pool, easy to debug and safe
    in notebooks). Otherwise a ``spawn`` pool is used, as nnU-Net does on every OS, so
    ``function`` must be a picklable top-level callable and the caller's script needs an
    ``if __name__ == "__main__":`` guard.

    Args:
        function: Top-level function of one argument.
        items: The work items (picklable).
        num_workers: Number of processes; capped at ``len(items)``.
        desc: Progress bar label.

    Returns:
        ``[function(item) for item in items]``.

    Examples:
        >>> map_cases(abs, [-1, 2, -3])
        [1, 2, 3]
    """
    workers = min(int(num_workers), len(items))
    if workers <= 1:
        return [function(item) for item in progress(items, total=len(items), desc=desc)]
    context = multiprocessing.get_context("spawn")
    results: list[Any] = [None] * len(items)
    with context.Pool(workers) as pool:
        indexed = pool.imap_unordered(
            _call_indexed, [(function, i, item) for i, item in enumerate(items)]
        )
        for index, result in progress(indexed, total=len(items), desc=desc):
            results[index] = result
    return results


def _call_indexed(job: tuple[Callable[[Any], Any], int, Any]) -> tuple[int, Any]:
    function, index, item = job
    return index, function(item)
