from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from nnunet_ext.synthetic import write_prediction_folder


def softmax_probabilities(
    rng: np.random.Generator, shape: Sequence[int], *, scale: float = 2.0
) -> NDArray[np.float32]:
    logits = rng.normal(0.0, scale, size=tuple(shape)).astype(np.float32)
    e = np.exp(logits - logits.max(axis=0, keepdims=True))
    return (e / e.sum(axis=0, keepdims=True)).astype(np.float32)


MakeFolders = Callable[..., list[Path]]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240611)


@pytest.fixture
def make_folders(tmp_path: Path, rng: np.random.Generator) -> MakeFolders:
    """Write ``num_members`` prediction folders with the same cases; return them."""

    def make(
        num_members: int = 3,
        cases: Sequence[str] = ("case_000", "case_001"),
        shape: Sequence[int] = (4, 5, 12, 10),
        names: Sequence[str] | None = None,
        quantize: int | None = None,
        **kwargs: object,
    ) -> list[Path]:
        folders = []
        for m in range(num_members):
            probs = {}
            for case in cases:
                p = softmax_probabilities(rng, shape)
                if quantize:  # coarse values: many exact ties across channels
                    p = (np.round(p * quantize) / quantize).astype(np.float32)
                probs[case] = p
            name = names[m] if names else f"model_{m}"
            folders.append(write_prediction_folder(tmp_path / name, probs, **kwargs))  # type: ignore[arg-type]
        return folders

    return make
