"""Check an nnU-Net set-up and its data (``nnunet-ext doctor``).

Environment: the three nnU-Net folders, the nnunetv2 version, whether nnU-Net's own trainer
lookup finds our trainers and which torch devices exist (both probed in child processes, so
importing this package loads neither torch nor nnunetv2). Data: junk files, files that cannot
be read completely, label values, image/label pairing and channel suffixes.
"""

from nnunet_ext.doctor.data import (
    check_file,
    check_raw_dataset,
    find_dataset_folders,
    remove_junk,
    scan_data,
)
from nnunet_ext.doctor.environment import (
    check_folders,
    check_nnunetv2_version,
    check_torch,
    check_trainers,
    interpret_lookup_output,
)
from nnunet_ext.doctor.findings import Finding, format_finding, is_junk

__all__ = [
    "Finding",
    "check_file",
    "check_folders",
    "check_nnunetv2_version",
    "check_raw_dataset",
    "check_torch",
    "check_trainers",
    "find_dataset_folders",
    "format_finding",
    "interpret_lookup_output",
    "is_junk",
    "remove_junk",
    "scan_data",
]
