"""``python -m nnunet_ext.demo``."""

from nnunet_ext.demo.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
