"""``python -m nnunet_ext.monitor``: same as ``nnunet-ext log``."""

from nnunet_ext.monitor.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
