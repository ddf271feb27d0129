"""`python -m nodes.client`: the Tahiry client (see nodes/client/cli.py)."""

import sys

from nodes.client.cli import main

if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        # `... | head`: the reader went away; not an error worth a traceback.
        sys.exit(1)
