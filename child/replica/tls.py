"""The answer endpoint's certificates: a CA made fresh at each start, and a certificate
for `localhost` (and 127.0.0.1) that it signs.

The real answer comes from another origin over HTTPS, and whatever reads it on the way
(the child's capture) has to trust that origin's CA explicitly: so the replica's CA is
nobody's default, and its PEM file is what a client is given to trust. The keys live
only in memory and in the server's temporary folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

from child.certificates import issue, new_ca, pem_certificate, pem_key

VALID_DAYS: Final = 30


@dataclass(frozen=True, slots=True)
class CertificateFiles:
    """Where `write_certificates` put the PEM files."""

    ca: Path
    certificate: Path
    key: Path


def write_certificates(
    folder: Path,
    dns_names: tuple[str, ...] = ("localhost",),
    ip_addresses: tuple[str, ...] = ("127.0.0.1",),
) -> CertificateFiles:
    """Make a CA and a server certificate for the names given; write both as PEM into `folder`."""
    ca_key, ca = new_ca("Replica AI Studio test CA", VALID_DAYS)
    key, certificate = issue(ca_key, ca, (*dns_names, *ip_addresses), VALID_DAYS)
    files = CertificateFiles(
        folder / "replica-ca.pem", folder / "replica-cert.pem", folder / "replica-key.pem"
    )
    files.ca.write_bytes(pem_certificate(ca))
    files.certificate.write_bytes(pem_certificate(certificate))
    files.key.touch(mode=0o600)
    files.key.write_bytes(pem_key(key))
    return files
