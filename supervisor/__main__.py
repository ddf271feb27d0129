"""`python -m supervisor up|down|status|restart|logs|check` (see supervisor/cli.py)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
