"""`python -m nodes.server`: run the server node."""

from nodes.server.node import main

main()
