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
import datetime
import hashlib
import ipaddress
import os
import ssl
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

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
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def server_context(self, host: str) -> ssl.SSLContext:
        """A TLS server context presenting a certificate for `host` (and this CA), HTTP/1.1 only."""
        context = self._contexts.get(host)
        if context is None:
            context = self._contexts[host] = self._make_context(host)
        return context

    def _make_context(self, host: str) -> ssl.SSLContext:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        try:
            name: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
        except ValueError:
            name = x509.DNSName(host)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=LEAF_DAYS))
            .add_extension(x509.SubjectAlternativeName([name]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.set_alpn_protocols(["http/1.1"])
        # ssl loads a chain from files only: a private temporary folder, gone at once.
        with tempfile.TemporaryDirectory(prefix="capture-") as folder:
            chain = Path(folder) / "chain.pem"
            chain.write_bytes(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
                + certificate.public_bytes(serialization.Encoding.PEM)
                + self.certificate_pem
            )
            context.load_cert_chain(chain)
        return context


def _create(path: Path) -> None:
    """Write a new CA to `path` with mode 600; FileExistsError if another process was first."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=365 * CA_YEARS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ) + certificate.public_bytes(serialization.Encoding.PEM)
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
