"""Run benchmark scripts on two versions of nnunet_ext, alternating, and print both side by side.

``.venv/bin/python benchmarks/ab.py --base REV [--repeats 3] bench_ensemble.py --small``
checks ``REV`` out into a temporary git worktree and runs the named script ``--repeats`` times
from each tree (the base's own copy of the script with the base's package, and this tree's with
this tree's), alternating base and head so that a change of load hits both alike. Each run's
wall time and the script's last output lines are printed; the summary gives the median wall time
of each side and their ratio (head / base). For a restructuring, "within noise" means the ratio
stays inside the spread of the repeats of either side.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(tree: Path, script: str, arguments: list[str]) -> tuple[float, str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(tree / "benchmarks" / script), *arguments],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{tree}: {script} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return wall, "\n".join(done.stdout.strip().splitlines()[-3:])


def main() -> None:
    """Parse the arguments, run both sides alternating, print the summary."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", required=True, help="git revision to compare against")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("script", help="a benchmarks/bench_*.py file name")
    parser.add_argument("arguments", nargs=argparse.REMAINDER, help="passed to the script")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nnunet_ext-ab-") as scratch:
        base = Path(scratch) / "base"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(base), args.base],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        try:
            times: dict[str, list[float]] = {"base": [], "head": []}
            for repeat in range(args.repeats):
                for side, tree in (("base", base), ("head", ROOT)):
                    wall, tail = _run(tree, args.script, args.arguments)
                    times[side].append(wall)
                    print(f"[{repeat + 1}/{args.repeats}] {side}: {wall:.2f} s\n{tail}\n")
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, check=False
            )
    medians = {side: statistics.median(values) for side, values in times.items()}
    spread = {side: f"{min(v):.2f}-{max(v):.2f}" for side, v in times.items()}
    ratio = medians["head"] / medians["base"]
    print(
        f"{args.script}: base {medians['base']:.2f} s ({spread['base']}), head "
        f"{medians['head']:.2f} s ({spread['head']}), head/base {ratio:.3f}"
    )


if __name__ == "__main__":
    main()
