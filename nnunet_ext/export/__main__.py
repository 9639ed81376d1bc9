"""Run ``python -m nnunet_ext.export``."""

from nnunet_ext.export.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
