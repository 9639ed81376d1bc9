"""nnunet_ext: what stock nnU-Net v2 is missing for challenges and studies.

Training length and early stopping (``-tr CustomEpochs``), weighted ensembling, postprocessing,
evaluation and submission checks. Importing this package is cheap: no torch, no nnunetv2.
"""

from __future__ import annotations

import logging

__version__ = "0.2.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = ["__version__"]
