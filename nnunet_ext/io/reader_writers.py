"""nnU-Net's image reader/writer classes, by the name ``plans.json`` gives them.

Only the one reader's module is imported (lazily), and nothing of torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from nnunet_ext.io.errors import InputError
from nnunet_ext.io.schema import describe

__all__ = ["READER_WRITERS", "reader_writer"]

#: nnU-Net reader/writer class name -> module, so we import only the one we need (the registry
#: module imports every reader: SimpleITK, nibabel, tifffile, scikit-image; about 0.5 s).
READER_WRITERS = {
    "SimpleITKIO": "nnunetv2.imageio.simpleitk_reader_writer",
    "SimpleITKIOWithReorient": "nnunetv2.imageio.simpleitk_reader_writer",
    "NibabelIO": "nnunetv2.imageio.nibabel_reader_writer",
    "NibabelIOWithReorient": "nnunetv2.imageio.nibabel_reader_writer",
    "NaturalImage2DIO": "nnunetv2.imageio.natural_image_reader_writer",
    "Tiff3DIO": "nnunetv2.imageio.tif_reader_writer",
}


def reader_writer(name: str) -> Any:
    """Instantiate nnU-Net's image reader/writer class ``name`` (from ``plans.json``).

    Only that reader's module is imported, and nothing of torch.

    Args:
        name: ``plans["image_reader_writer"]``, e.g. ``"SimpleITKIO"``.

    Raises:
        InputError: For an unknown name.
    """
    module = READER_WRITERS.get(name)
    if module is None:
        raise InputError(
            "plans.json",
            f"one of {', '.join(sorted(READER_WRITERS))}",
            describe(name),
            key="image_reader_writer",
        )
    return getattr(importlib.import_module(module), name)()
