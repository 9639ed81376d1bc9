"""Reading and writing nnU-Net's files: label maps, properties pickles, JSON, folder listings.

The one place that touches nnU-Net's on-disk formats, so that every command agrees on them.
Nothing here imports torch.
"""

from nnunet_ext.io.atomic import (
    TEMP_PREFIX,
    atomic_path,
    to_strict_json,
    write_json,
)
from nnunet_ext.io.cases import case_id_from_filename, is_hidden, list_case_files
from nnunet_ext.io.dataset_json import LabelSpec, LabelValue, load_dataset_json
from nnunet_ext.io.errors import InputError
from nnunet_ext.io.json_files import load_json, load_json_object
from nnunet_ext.io.labels import (
    FLOAT_LABEL_TOLERANCE,
    LabelImage,
    as_exact_labels,
    read_labels,
    verify_image_complete,
    write_labels,
)
from nnunet_ext.io.outputs import remove_stale_temporaries
from nnunet_ext.io.plans import load_plans
from nnunet_ext.io.reader_writers import reader_writer
from nnunet_ext.io.safe_pickle import UnsafePickleError, load_properties, safe_loads

# Deliberate duplicate: the package re-exports the public names of its modules (one import path).
__all__ = [
    "FLOAT_LABEL_TOLERANCE",
    "TEMP_PREFIX",
    "InputError",
    "LabelImage",
    "LabelSpec",
    "LabelValue",
    "UnsafePickleError",
    "as_exact_labels",
    "atomic_path",
    "case_id_from_filename",
    "is_hidden",
    "list_case_files",
    "load_dataset_json",
    "load_json",
    "load_json_object",
    "load_plans",
    "load_properties",
    "read_labels",
    "reader_writer",
    "remove_stale_temporaries",
    "safe_loads",
    "to_strict_json",
    "verify_image_complete",
    "write_json",
    "write_labels",
]
