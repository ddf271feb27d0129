"""The wire protocol every node speaks, sans-IO (docs/ARCHITECTURE.md).

`wire`: requests (`;`-terminated statements, dot commands) and responses
(ending in `END`), their decoders and encoders, no sockets; `auth`: the
shared-secret handshake.
"""
