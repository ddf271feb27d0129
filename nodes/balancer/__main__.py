"""`python -m nodes.balancer`: run the balancer node."""

import sys

from nodes.balancer.node import main

sys.exit(main())
