"""``python -m nnunet_ext.postprocess``."""

from nnunet_ext.postprocess.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
