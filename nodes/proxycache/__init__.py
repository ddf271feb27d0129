"""The local caching proxy node: answers repeated reads from its cache
(`cache`) and forwards the rest upstream (`node`). `python -m nodes.proxycache`."""
