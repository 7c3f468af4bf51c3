"""``python -m slidelearn``: the ``slidelearn`` command, in :mod:`slidelearn._cli`."""
import sys

# build_parser and demo: the names this module had when it held the command line
from slidelearn._cli import build_parser, demo, main  # noqa: F401

if __name__ == "__main__":
    sys.exit(main())
