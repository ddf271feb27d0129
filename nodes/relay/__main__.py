"""`python -m nodes.relay`: run the one-relay node (proxy cache and balancer in one process)."""

import sys

from nodes.relay.node import main

sys.exit(main())
