"""What a prediction did: :class:`PredictSummary`, returned by ``predict_folder``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["PredictSummary"]


@dataclass(frozen=True)
class PredictSummary:
    """What :func:`predict_folder` did.

    Attributes:
        output_dir: The output folder.
        written: Cases predicted and written by this call.
        skipped: Cases whose outputs already existed (or, with claims, were done by others).
        provenance: The provenance record written to ``nnunet_ext_predict.json``.
        run: How it ran: ``executor`` (``local``/``ray``), ``workers`` (``host:pid`` -> cases
            handled), ``retries`` (cases retaken from a worker that died) and ``wall_s``.
    """

    output_dir: Path
    written: tuple[str, ...]
    skipped: tuple[str, ...]
    provenance: dict[str, Any]
    run: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "output_dir": str(self.output_dir),
            "written": list(self.written),
            "skipped": list(self.skipped),
            **self.run,
        }
