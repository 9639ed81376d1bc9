"""Run ``python -m nnunet_ext.predict``."""

from nnunet_ext.predict.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
