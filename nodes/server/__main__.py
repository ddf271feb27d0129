"""`python -m nodes.server`: run the server node."""

from nodes.server.startup import main

main()
