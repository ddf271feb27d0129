"""The root of every exception the nodes raise: `NodeError`.

A leaf (it imports nothing of the project), so that every package of
`nodes/` may use it, `nodes.protocol` included. Each exception keeps the
secondary base its callers catch it by (`ValueError` for a bad parameter);
the client's PEP 249 hierarchy (`nodes.client.exceptions.Error`, `Warning`)
hangs under it too, as the standard allows.
"""

from __future__ import annotations


class NodeError(Exception):
    """Something a node, the client or the wire protocol could not do."""
