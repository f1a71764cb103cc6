"""``python -m refimpl``: the same command line as ``refimpl``."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
