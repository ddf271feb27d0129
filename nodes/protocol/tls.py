"""TLS for Tahiry's links: the contexts both ends use (stdlib `ssl`), configured once.

The topology's `tls:` section (cert, key, ca, client_certs) reaches every
node as `--tls-cert/--tls-key/--tls-ca[/--tls-client-certs]`, the client and
the DB-API driver as `--tls-ca` (`ca=`) and, when client certificates are
required, `--tls-cert/--tls-key`. One certificate and key per machine: its
subjectAltName names the machine's addresses, and every peer verifies it
against the CA (hostname checking included: nodes connect by the address in
the topology). docs/SECURITY.md shows how to make them with openssl.

- `TlsSettings`: the files and whether client certificates are required;
- `server_context(settings)`: what a listening node wraps connections with;
- `client_context(settings)`: what a connecting side (a relay to its
  upstream, the supervisor's probes, the client) verifies the node with, and
  presents when client certificates are required.

A missing or unreadable file, a key that does not match its certificate,
or a CA that is no certificate: `TlsConfigError`, one sentence naming the
file, before anything listens or connects.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from nodes.errors import NodeError

# TLS 1.2 at least; the rest is Python's defaults (secure ciphers, no compression).
MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2


class TlsConfigError(NodeError):
    """A TLS file is missing, unreadable or not what it should be."""


@dataclass(frozen=True)
class TlsSettings:
    """The files of one machine's TLS set-up; `client_certs`: connecting sides must show one."""

    cert: Path | None = None
    key: Path | None = None
    ca: Path | None = None
    client_certs: bool = False

    @property
    def enabled(self) -> bool:
        return self.ca is not None or self.cert is not None

    def argv(self) -> list[str]:
        """The command-line options that carry these settings to a node or a client."""
        options: list[str] = []
        for flag, path in (("--tls-cert", self.cert), ("--tls-key", self.key), ("--tls-ca", self.ca)):
            if path is not None:
                options += [flag, str(path)]
        if self.client_certs:
            options.append("--tls-client-certs")
        return options


def add_tls_arguments(parser, *, client: bool = False) -> None:
    """`--tls-cert`, `--tls-key`, `--tls-ca` (and, for nodes, `--tls-client-certs`)."""
    group = parser.add_argument_group("TLS (docs/SECURITY.md)")
    group.add_argument("--tls-ca", type=Path, default=None, metavar="FILE",
                       help="the CA that signed the nodes' certificates: connect with TLS")
    group.add_argument("--tls-cert", type=Path, default=None, metavar="FILE",
                       help="this side's certificate (a node's; a client's when nodes require one)")
    group.add_argument("--tls-key", type=Path, default=None, metavar="FILE",
                       help="the private key of --tls-cert")
    if not client:
        group.add_argument("--tls-client-certs", action="store_true",
                           help="require a certificate signed by --tls-ca from every client")


def settings_from_arguments(arguments) -> TlsSettings:
    return TlsSettings(getattr(arguments, "tls_cert", None), getattr(arguments, "tls_key", None),
                       getattr(arguments, "tls_ca", None),
                       bool(getattr(arguments, "tls_client_certs", False)))


def server_context(settings: TlsSettings) -> ssl.SSLContext | None:
    """The listening side's context; None when TLS is off (no certificate)."""
    if settings.cert is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = MINIMUM_VERSION
    _load_chain(context, settings)
    if settings.client_certs:
        if settings.ca is None:
            raise TlsConfigError("client certificates are required, but no CA file verifies them "
                                 "(--tls-ca)")
        _load_ca(context, settings.ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_context(settings: TlsSettings) -> ssl.SSLContext | None:
    """The connecting side's context (verifies the node against the CA); None when TLS is off."""
    if settings.ca is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)   # hostname check and CERT_REQUIRED
    context.minimum_version = MINIMUM_VERSION
    _load_ca(context, settings.ca)
    if settings.cert is not None:
        _load_chain(context, settings)
    return context


def _load_chain(context: ssl.SSLContext, settings: TlsSettings) -> None:
    assert settings.cert is not None
    if settings.key is None:
        raise TlsConfigError(f"no private key for the certificate {settings.cert} (--tls-key)")
    for path in (settings.cert, settings.key):
        _readable(path)
    try:
        context.load_cert_chain(settings.cert, settings.key)
    except (ssl.SSLError, OSError) as error:
        raise TlsConfigError(f"certificate {settings.cert} with key {settings.key} cannot be "
                             f"used: {error.strerror or error}") from None


def _load_ca(context: ssl.SSLContext, ca: Path) -> None:
    _readable(ca)
    try:
        context.load_verify_locations(cafile=ca)
    except (ssl.SSLError, OSError) as error:
        raise TlsConfigError(f"CA file {ca} cannot be used: {error.strerror or error}") from None


def _readable(path: Path) -> None:
    try:
        with open(path, "rb"):
            pass
    except OSError as error:
        raise TlsConfigError(f"TLS file {path} cannot be read: {error.strerror or error}") from None
