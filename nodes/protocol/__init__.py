"""The wire protocol every node speaks, sans-IO (docs/ARCHITECTURE.md).

`wire`: requests (`;`-terminated statements, dot commands) and responses
(ending in `END`), their decoders and encoders, no sockets; `auth`: the
shared-secret handshake; `login`: accounts (`.login`, its rate limits,
`.rights`, an administrator's `.stop`); `status_token`: the supervisor's token that lets its `.status`
probe see account names. Other packages import what they use from here (`from
nodes.protocol import ResponseDecoder`); the names below are that public API.
"""

from nodes.protocol.auth import (
    AUTH_TIMEOUT_S,
    MIN_SECRET_CHARS,
    SECRET_ENV,
    UNIX_SOCKET_PEER,
    AuthGuard,
    add_auth_arguments,
    answer_auth,
    is_local_peer,
    is_loopback,
    node_auth_guard,
    secret_from_environment,
)
from nodes.protocol.login import (
    ALLOWED_BEFORE_LOGIN,
    LOGIN_BUSY,
    LOGIN_LOCKED,
    LOGIN_MALFORMED,
    LOGIN_NOT_NEEDED,
    LOGIN_OK,
    LOGIN_REFUSED,
    LOGIN_REQUIRED,
    STOP_ACCOUNTS_OFF,
    STOP_MALFORMED,
    STOP_NO_ACCOUNT,
    STOP_REFUSED,
    STOPPED,
    LoginGate,
    add_login_arguments,
    decode_rights,
    encode_rights,
    login_arguments,
    login_name,
    login_problem,
    login_request,
    node_login_gate,
    password_literal,
    redact_login,
    renewed_login,
    stop_name,
    stopped_count,
)
from nodes.protocol.wire import (
    ADMIN_AUTH,
    ADMIN_LOGIN,
    ADMIN_PEER,
    ADMIN_PING,
    ADMIN_RIGHTS,
    ADMIN_STATUS,
    ADMIN_STOP,
    ADMIN_VERSIONS,
    DEFAULT_MAX_REQUEST_BYTES,
    DEFAULT_PAGE_ROWS,
    STUCK_REQUEST_QUIET_S,
    TOO_MANY_CONNECTIONS,
    ProtocolError,
    Request,
    RequestFramer,
    Response,
    ResponseDecoder,
    auth_request,
    auth_secret,
    decode_responses,
    decode_versions,
    encode_error,
    encode_message,
    encode_outcome,
    is_too_many_connections,
    response_is_error,
    secret_problem,
    statement_bytes,
    versions_arguments,
    versions_request,
)

__all__ = [
    # wire: requests
    "ADMIN_AUTH", "ADMIN_LOGIN", "ADMIN_PEER", "ADMIN_PING", "ADMIN_RIGHTS", "ADMIN_STATUS",
    "ADMIN_STOP", "ADMIN_VERSIONS", "DEFAULT_MAX_REQUEST_BYTES",
    "Request", "RequestFramer", "STUCK_REQUEST_QUIET_S", "statement_bytes", "auth_request",
    "auth_secret", "secret_problem",
    "versions_request", "versions_arguments",
    # wire: responses
    "DEFAULT_PAGE_ROWS", "ProtocolError", "Response", "ResponseDecoder", "decode_responses",
    "decode_versions", "encode_error", "encode_message", "encode_outcome", "response_is_error",
    "TOO_MANY_CONNECTIONS", "is_too_many_connections",
    # auth: the shared secret
    "AUTH_TIMEOUT_S", "MIN_SECRET_CHARS", "SECRET_ENV", "AuthGuard", "add_auth_arguments",
    "answer_auth", "is_local_peer", "is_loopback", "UNIX_SOCKET_PEER",
    "node_auth_guard", "secret_from_environment",
    # login: accounts
    "ALLOWED_BEFORE_LOGIN", "LOGIN_BUSY", "LOGIN_LOCKED", "LOGIN_MALFORMED", "LOGIN_NOT_NEEDED",
    "LOGIN_OK", "LOGIN_REFUSED", "LOGIN_REQUIRED", "LoginGate", "add_login_arguments",
    "node_login_gate", "decode_rights", "encode_rights",
    "login_arguments", "login_name", "login_problem", "login_request",
    "password_literal", "redact_login", "renewed_login",
    "STOPPED", "STOP_ACCOUNTS_OFF", "STOP_MALFORMED", "STOP_NO_ACCOUNT", "STOP_REFUSED",
    "stop_name", "stopped_count",
]
