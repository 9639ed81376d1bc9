"""Run ``python -m nnunet_ext.ensemble``."""

from nnunet_ext.ensemble.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
