"""What several benchmark scripts share (run them as ``python benchmarks/bench_*.py``)."""

from __future__ import annotations

import argparse

__all__ = ["add_executor_arguments"]


def add_executor_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--executor {local,ray}`` and ``--ray-address``: where our side of a benchmark runs."""
    parser.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="ray: ours also runs on Ray (one task per case), reported next to local",
    )
    parser.add_argument("--ray-address", default=None, help="a running Ray cluster (auto)")
