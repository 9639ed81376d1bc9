"""``python -m nnunet_ext.evaluate``."""

from nnunet_ext.evaluate.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
