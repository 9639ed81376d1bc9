"""``python -m nnunet_ext.submission``."""

from nnunet_ext.submission.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
