"""``python -m nnunet_ext.compare``."""

from nnunet_ext.compare.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
