"""What every example script shares: where it works, and writing reference label files.

Not an example itself: the scripts import it (``python examples/NAME.py`` puts this folder on
``sys.path``, and spawned workers inherit that path).
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import SimpleITK as sitk  # noqa: N813

#: Spacing of every synthetic case in the examples, SimpleITK order (x, y, z).
SPACING = (1.0, 1.0, 2.5)


def run(main: Callable[[Path], None]) -> None:
    """Call ``main(WORK_DIR)`` with the folder given on the command line, else a temporary one."""
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory(prefix="nnunet_ext-example-") as tmp:
            main(Path(tmp))


def write_label_files(folder: Path, arrays: Mapping[str, np.ndarray]) -> Path:
    """Write one ``CASE.nii.gz`` uint8 label file per case (as nnU-Net's ``gt_segmentations``)."""
    folder.mkdir(parents=True, exist_ok=True)
    for case, labels in arrays.items():
        image = sitk.GetImageFromArray(labels.astype(np.uint8))
        image.SetSpacing(SPACING)
        sitk.WriteImage(image, str(folder / f"{case}.nii.gz"), True)
    return folder
