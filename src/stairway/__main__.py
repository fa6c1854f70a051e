"""``python -m stairway``: the same command line as ``stairway``."""

from stairway.cli import main

main()
