"""`python -m nodes.client`: the Tahiry client (see nodes/client/cli.py)."""

import sys

from nodes.client.cli import main

if __name__ == "__main__":
    sys.exit(main())   # main() ends quietly on Ctrl-C and on a reader gone away
