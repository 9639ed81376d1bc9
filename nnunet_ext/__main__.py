"""``python -m nnunet_ext`` is the umbrella command."""

from nnunet_ext.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
