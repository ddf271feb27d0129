"""TLS contexts (nodes/protocol/tls.py) over real sockets with real certificates."""

from __future__ import annotations

import socket
import ssl
import threading

import pytest

from nodes.protocol.tls import TlsConfigError, TlsSettings, client_context, server_context
from tests.tlskit import Certificates


@pytest.fixture(scope="module")
def certificates(tmp_path_factory) -> Certificates:
    return Certificates(tmp_path_factory.mktemp("certificates"))


def handshake(server: ssl.SSLContext, client: ssl.SSLContext, address: str = "127.0.0.1") -> bytes:
    """One TLS connection on loopback: what the client reads after the server says hello."""
    with socket.create_server((address, 0)) as listener:
        port = listener.getsockname()[1]
        failures: list[BaseException] = []

        def serve() -> None:
            try:
                connection, _ = listener.accept()
                with server.wrap_socket(connection, server_side=True) as wrapped:
                    wrapped.sendall(b"PONG\n")
            except (ssl.SSLError, OSError) as error:
                failures.append(error)

        thread = threading.Thread(target=serve)
        thread.start()
        try:
            with socket.create_connection((address, port), timeout=5) as raw, \
                    client.wrap_socket(raw, server_hostname=address) as wrapped:
                return wrapped.recv(100)
        finally:
            thread.join(5)


def test_off_without_files():
    assert server_context(TlsSettings()) is None and client_context(TlsSettings()) is None
    assert not TlsSettings().enabled and TlsSettings().argv() == []


def test_a_client_trusting_the_ca_talks_to_a_node_with_its_certificate(certificates):
    node = certificates.machine("h1", ["127.0.0.1"])
    assert handshake(server_context(node), client_context(TlsSettings(ca=certificates.ca))) \
        == b"PONG\n"
    assert node.argv() == ["--tls-cert", str(node.cert), "--tls-key", str(node.key),
                           "--tls-ca", str(node.ca)]


def test_a_certificate_for_another_address_is_refused(certificates):
    node = certificates.machine("elsewhere", ["10.9.9.9"])
    with pytest.raises(ssl.SSLCertVerificationError, match="IP address mismatch"):
        handshake(server_context(node), client_context(TlsSettings(ca=certificates.ca)))


def test_a_certificate_from_another_ca_is_refused(certificates, tmp_path):
    stranger = Certificates(tmp_path / "other", ca_name="other-ca").machine("h1", ["127.0.0.1"])
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
        handshake(server_context(stranger), client_context(TlsSettings(ca=certificates.ca)))


def test_client_certificates_when_required(certificates):
    node = certificates.machine("node", ["127.0.0.1"])
    required = server_context(TlsSettings(node.cert, node.key, node.ca, client_certs=True))
    student = certificates.machine("student", ["127.0.0.1"])
    assert handshake(required, client_context(student)) == b"PONG\n"
    try:
        # Without a certificate the handshake may complete on the client's side
        # (TLS 1.3): the node then refuses, and the read fails or ends.
        reply: bytes | None = handshake(required, client_context(TlsSettings(ca=certificates.ca)))
    except (ssl.SSLError, ConnectionError):
        reply = None
    assert reply != b"PONG\n"


def test_bad_files_are_one_clear_error(certificates, tmp_path):
    node = certificates.machine("bad", ["127.0.0.1"])
    with pytest.raises(TlsConfigError, match="cannot be read"):
        server_context(TlsSettings(tmp_path / "missing.crt", node.key))
    with pytest.raises(TlsConfigError, match="no private key"):
        server_context(TlsSettings(node.cert))
    other_key = certificates.machine("other", ["127.0.0.1"]).key
    with pytest.raises(TlsConfigError, match="cannot be used"):
        server_context(TlsSettings(node.cert, other_key))
    garbage = tmp_path / "garbage.crt"
    garbage.write_text("not a certificate")
    with pytest.raises(TlsConfigError, match="CA file .* cannot be used"):
        client_context(TlsSettings(ca=garbage))
    with pytest.raises(TlsConfigError, match="no CA file"):
        server_context(TlsSettings(node.cert, node.key, client_certs=True))
