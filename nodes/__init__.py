"""Tahiry's network side: the node processes and the client (nodes/DESIGN.md).

`nodes.protocol` (the wire format and the shared secret, sans-IO) and
`nodes.runtime` (serving a port, a pipelined connection upstream, a node's
process) are shared; on them run the three nodes `nodes.server` (the engine
behind the protocol), `nodes.balancer` (routing, health, read-your-writes)
and `nodes.proxycache` (cached reads), each `python -m nodes.<node>`, and
`nodes.client` (a DB-API 2.0 driver and the command line). The node
packages never import each other, and `nodes` never imports `supervisor`.
"""
