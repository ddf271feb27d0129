"""`python -m nodes.proxycache`: run the proxycache node."""

from nodes.proxycache.node import main

main()
