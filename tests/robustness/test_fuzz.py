"""Seeded fuzzing: random byte damage to each input kind never gets past the invariants.

Each case overwrites, deletes or inserts a few random bytes of one input file (or cuts it at a
random point), runs every command that reads it and asserts: exit 0 or 1; on 1 one error line
and nothing written but finished cases; on 0 complete outputs (a damage that leaves a valid
file may pass); inputs byte-identical; no temporary or lock file; no traceback; the
internal-error handler not reached. The seeds are fixed, so a failure reproduces exactly.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from ._data import (
    COMMANDS,
    build_inputs,
    check_outcome,
    run_command,
    tree_hashes,
)

#: Input kind -> (file under the input root, commands that read it).
KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "label": ("m1/case_b.nii.gz", ("evaluate", "postprocess", "build")),
    "reference": ("ref/case_b.nii.gz", ("determine",)),
    "probabilities": ("m1/case_b.npz", ("ensemble", "ensemble-qc")),
    "properties": ("m1/case_b.pkl", ("ensemble",)),
    "dataset-json": ("m1/dataset.json", ("ensemble", "postprocess", "build")),
    "plans-json": ("m1/plans.json", ("ensemble",)),
    "spec": ("spec.json", ("ensemble-spec",)),
    "plan": ("plan.json", ("postprocess-plan",)),
    "zip": ("sub.zip", ("check",)),
    "qc-table": ("qc.csv", ("check-qc",)),
    "log": ("fold/training_log_2026_11_9_10_00_00.txt", ("log",)),
    "evaluation": ("eval_m2.json", ("compare",)),
}
SEEDS = range(6)


@pytest.fixture(scope="session")
def fuzz_inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_inputs(tmp_path_factory.mktemp("fuzz") / "inputs")


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """Damage ``data``: overwrite, delete or insert 1-8 random bytes, or cut it short."""
    buffer = bytearray(data)
    kind = rng.integers(4)
    if kind == 3 and len(buffer) > 1:
        return bytes(buffer[: int(rng.integers(1, len(buffer)))])
    for _ in range(int(rng.integers(1, 9))):
        at = int(rng.integers(0, max(len(buffer), 1)))
        if kind == 0 and buffer:
            buffer[at] = int(rng.integers(0, 256))
        elif kind == 1 and buffer:
            del buffer[at]
        else:
            buffer.insert(at, int(rng.integers(0, 256)))
    return bytes(buffer)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_random_damage_keeps_the_invariants(
    fuzz_inputs: Path, tmp_path: Path, kind: str, seed: int
) -> None:
    target, commands = KINDS[kind]
    rng = np.random.default_rng([seed, sorted(KINDS).index(kind)])
    root = tmp_path / "inputs"
    shutil.copytree(fuzz_inputs, root)
    original = (root / target).read_bytes()
    damaged = mutate(original, rng)
    (root / target).write_bytes(damaged)
    before = tree_hashes(root)
    for name in commands:
        out = tmp_path / f"out-{name}"
        out.mkdir()
        command = COMMANDS[name]
        result = run_command(command, root, out)
        check_outcome(command, result, tmp_path, out)
        assert tree_hashes(root) == before, f"{name} modified an input"
