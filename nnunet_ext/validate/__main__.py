"""``python -m nnunet_ext.validate``: same as ``nnunet-ext validate``."""

from nnunet_ext.validate.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
