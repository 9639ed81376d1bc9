"""Check an nnU-Net set-up and its data (``nnunet-ext doctor``).

Environment: the three nnU-Net folders, the nnunetv2 version, whether nnU-Net's own trainer
lookup finds our trainers and which torch devices exist (both probed in child processes, so
importing this package loads neither torch nor nnunetv2). Data: junk files, files that cannot
be read completely, label values, image/label pairing and channel suffixes.
"""

from nnunet_ext.doctor.data import scan_data
from nnunet_ext.doctor.findings import Finding

__all__ = ["Finding", "scan_data"]
