"""``python -m nnunet_ext.doctor``: same as ``nnunet-ext doctor``."""

from nnunet_ext.doctor.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
