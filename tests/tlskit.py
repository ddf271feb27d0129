"""Certificates for TLS tests, made with the openssl commands docs/SECURITY.md shows.

`Certificates(folder)` makes a class CA once; `machine(name, addresses)`
gives a certificate and key signed by it for those IP addresses (the
subjectAltName every peer checks). `other_ca` is a second CA, for
certificates nobody should trust. Tests skip with one line when the
openssl command is missing.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from nodes.protocol.tls import TlsSettings

CURVE = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def _openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)} failed: {done.stderr}")


class Certificates:
    def __init__(self, folder: Path, ca_name: str = "ca"):
        if shutil.which("openssl") is None:
            pytest.skip("the openssl command is not installed: no certificates for the TLS tests")
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.ca_name = ca_name
        _openssl("req", "-x509", *CURVE, "-keyout", f"{ca_name}.key", "-out", f"{ca_name}.crt",
                 "-days", "30", "-subj", f"/CN=Tahiry test {ca_name}", cwd=folder)

    @property
    def ca(self) -> Path:
        return self.folder / f"{self.ca_name}.crt"

    def machine(self, name: str, addresses: list[str]) -> TlsSettings:
        """A certificate for `addresses`, signed by this CA: a machine's TLS settings."""
        (self.folder / f"{name}.ext").write_text(
            "subjectAltName=" + ",".join(f"IP:{address}" for address in addresses) + "\n")
        _openssl("req", *CURVE, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN={name}", cwd=self.folder)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{self.ca_name}.crt",
                 "-CAkey", f"{self.ca_name}.key", "-CAcreateserial", "-out", f"{name}.crt",
                 "-days", "30", "-extfile", f"{name}.ext", cwd=self.folder)
        return TlsSettings(self.folder / f"{name}.crt", self.folder / f"{name}.key", self.ca)
