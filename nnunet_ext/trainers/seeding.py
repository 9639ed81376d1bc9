"""``nnUNet_seed``: seed the generators a training run draws from, one seed per DDP rank."""

from __future__ import annotations

import random

import numpy as np
import torch
import torch.distributed as dist

__all__ = ["seed_generators"]


def seed_generators(seed: int) -> None:
    """Seed Python's, NumPy's (legacy global) and torch's random generators.

    Under DDP rank ``r`` uses ``seed + r`` (modulo 2**32), so that the ranks draw different
    batches (DDP copies rank 0's initial weights to the others).
    """
    if dist.is_available() and dist.is_initialized():
        seed = (seed + dist.get_rank()) % 2**32
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - nnU-Net draws from the legacy global generator
    torch.manual_seed(seed)
