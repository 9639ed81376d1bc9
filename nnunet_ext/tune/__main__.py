"""``python -m nnunet_ext.tune``."""

from nnunet_ext.tune.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
