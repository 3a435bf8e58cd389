"""The capture's certificate authority: made once per installation, kept with mode 600.

The browser talks TLS to the capture for the answer's host only, so the capture needs a
certificate for that host that the browser accepts. One CA signs it; the CA's key and
certificate live in one PEM file that only its owner can read, created atomically (the
first child to start writes it, the others read what it wrote). Leaf certificates are
made in memory per host and kept for the process's life.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import ssl
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from child.certificates import issue, new_ca, pem_certificate, pem_key

CA_NAME = "coordinator capture CA"
CA_YEARS = 10
LEAF_DAYS = 90
# Browsers refuse leaf certificates valid for much longer than a year.


class CAError(Exception):
    """The CA file cannot be read or made; the message says which file and why."""


class CertificateAuthority:
    """A CA key and certificate, and the leaf TLS contexts it signs."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate) -> None:
        self.key = key
        self.certificate = certificate
        self._contexts: dict[str, ssl.SSLContext] = {}

    @classmethod
    def load_or_create(cls, path: Path) -> CertificateAuthority:
        """The CA in `path`, made there first if the file does not exist."""
        if not path.exists():
            with contextlib.suppress(FileExistsError):
                _create(path)
        try:
            if path.stat().st_mode & 0o077:
                raise CAError(f"{path} can be read by others: chmod 600 it (it holds the capture's CA key)")
            return cls.from_pem(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise CAError(f"cannot use the capture CA {path}: {exc}") from None

    @classmethod
    def from_pem(cls, data: bytes) -> CertificateAuthority:
        key = serialization.load_pem_private_key(data, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("the CA key is not an EC key")
        return cls(key, x509.load_pem_x509_certificate(data))

    @property
    def spki_sha256(self) -> str:
        """The CA's public key hash as Chromium's --ignore-certificate-errors-spki-list takes it."""
        spki = self.certificate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(hashlib.sha256(spki).digest()).decode()

    @property
    def certificate_pem(self) -> bytes:
        return pem_certificate(self.certificate)

    def server_context(self, host: str) -> ssl.SSLContext:
        """A TLS server context presenting a certificate for `host` (and this CA), HTTP/1.1 only."""
        context = self._contexts.get(host)
        if context is None:
            context = self._contexts[host] = self._make_context(host)
        return context

    def _make_context(self, host: str) -> ssl.SSLContext:
        key, certificate = issue(self.key, self.certificate, (host,), LEAF_DAYS)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.set_alpn_protocols(["http/1.1"])
        # ssl loads a chain from files only: a private temporary folder, gone at once.
        with tempfile.TemporaryDirectory(prefix="capture-") as folder:
            chain = Path(folder) / "chain.pem"
            chain.write_bytes(pem_key(key) + pem_certificate(certificate) + self.certificate_pem)
            context.load_cert_chain(chain)
        return context


def _create(path: Path) -> None:
    """Write a new CA to `path` with mode 600; FileExistsError if another process was first."""
    key, certificate = new_ca(CA_NAME, 365 * CA_YEARS)
    pem = pem_key(key) + pem_certificate(certificate)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=".ca-", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as file:  # mkstemp made it 600
            file.write(pem)
            file.flush()
            os.fsync(file.fileno())
        # link, not replace: a CA another child already wrote must win, not be overwritten.
        os.link(temporary, path)
    finally:
        os.unlink(temporary)
