"""A local test CA and TLS leaf certificates for the sandbox, generated with ``cryptography``.

Two modes:

- ``ca``: a CA (``basicConstraints CA:TRUE``) and a leaf for ``localhost``, ``127.0.0.1`` and
  ``::1`` signed by it. Clients trust the CA file (the product through ``EXCHANGE_CA_BUNDLE``).
- ``selfsigned``: a self-signed leaf and no CA, which a verifying client must refuse.

Files are reused while they are valid for at least another day, so the CA path (and the trust a
developer set up once) survives restarts of ``make run``.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = dt.timedelta(days=365)
# Regenerate when less than this is left, so a long test run never sees an expiry.
RENEW_MARGIN = dt.timedelta(days=1)
HOSTS = ("localhost",)
ADDRESSES = ("127.0.0.1", "::1")


@dataclass(frozen=True)
class CertificatePaths:
    """Where the PEM files are. ``ca_file`` is None in ``selfsigned`` mode."""

    ca_file: Path | None
    cert_file: Path
    key_file: Path


def default_directory() -> Path:
    """``$PSA_VAR_DIR/sandbox`` (default ``<project>/var/sandbox``)."""
    project = Path(__file__).resolve().parents[2]
    return Path(os.environ.get("PSA_VAR_DIR", str(project / "var"))) / "sandbox"


def ensure_certificates(mode: str = "ca", directory: Path | None = None) -> CertificatePaths:
    """Return the certificate files for ``mode`` (``ca`` | ``selfsigned``), creating them if needed.

    Existing files are reused when they parse, chain together and are valid for more than
    ``RENEW_MARGIN``; otherwise they are all regenerated together.
    """
    if mode not in ("ca", "selfsigned"):
        raise ValueError(f"unknown certificate mode {mode!r}")
    directory = Path(directory or default_directory())
    directory.mkdir(parents=True, exist_ok=True)
    if mode == "ca":
        paths = CertificatePaths(
            directory / "ca.pem", directory / "localhost.pem", directory / "localhost-key.pem"
        )
    else:
        paths = CertificatePaths(
            None, directory / "selfsigned.pem", directory / "selfsigned-key.pem"
        )
    # A file lock, because two processes (pytest workers, make run) may start at once and must
    # not interleave their writes of a CA and a leaf from different generations.
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _reusable(paths):
            _generate(paths)
    return paths


def _reusable(paths: CertificatePaths) -> bool:
    files = [p for p in (paths.ca_file, paths.cert_file, paths.key_file) if p is not None]
    if not all(p.is_file() for p in files):
        return False
    try:
        leaf = x509.load_pem_x509_certificate(paths.cert_file.read_bytes())
        key = serialization.load_pem_private_key(paths.key_file.read_bytes(), password=None)
        certs = [leaf]
        if paths.ca_file is not None:
            ca = x509.load_pem_x509_certificate(paths.ca_file.read_bytes())
            leaf.verify_directly_issued_by(ca)
            certs.append(ca)
    except (ValueError, TypeError, InvalidSignature, OSError):
        return False
    if key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != leaf.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        return False
    deadline = dt.datetime.now(dt.UTC) + RENEW_MARGIN
    return all(cert.not_valid_after_utc > deadline for cert in certs)


def _generate(paths: CertificatePaths) -> None:
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)  # tolerate small clock skew
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    if paths.ca_file is None:
        name = _name("PSA Exchange sandbox (self-signed)")
        leaf = _leaf_builder(name, name, leaf_key, now).sign(leaf_key, hashes.SHA256())
    else:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = _name("PSA Exchange sandbox test CA")
        ca = _ca_certificate(ca_name, ca_key, now)
        leaf = _leaf_builder(_name("localhost"), ca_name, leaf_key, now, issuer_key=ca_key).sign(
            ca_key, hashes.SHA256()
        )
        _write(paths.ca_file, ca.public_bytes(serialization.Encoding.PEM))
    _write(
        paths.key_file,
        leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        private=True,
    )
    _write(paths.cert_file, leaf.public_bytes(serialization.Encoding.PEM))


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "PSA Exchange sandbox"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _ca_certificate(
    name: x509.Name, key: ec.EllipticCurvePrivateKey, now: dt.datetime
) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def _leaf_builder(
    subject: x509.Name,
    issuer: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    now: dt.datetime,
    issuer_key: ec.EllipticCurvePrivateKey | None = None,
) -> x509.CertificateBuilder:
    alt_names: list[x509.GeneralName] = [x509.DNSName(h) for h in HOSTS]
    alt_names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ADDRESSES]
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    )
    if issuer_key is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    return builder


def _write(path: Path, data: bytes, *, private: bool = False) -> None:
    # Write beside and rename, so a concurrent reader never sees half a file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)
