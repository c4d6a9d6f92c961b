"""Who signs content credentials: a local CA and its signing certificate, or the user's own.

C2PA readers refuse a self-signed signing certificate, so `init_credentials` makes two: a local
certificate authority (CA) and a leaf certificate it issues, with the key usages C2PA asks of a
signer (Key Usage digitalSignature, marked critical; Extended Key Usage emailProtection and
documentSigning; not a CA). Both use ECDSA P-256 (ES256). The local CA is trusted only where its
`ca.pem` is installed: on this machine (the credentials directory) or wherever it is copied.

`load_signer` reads a directory made by `init_credentials`, or a certificate chain and key the
user brings, and checks them before any work: the key matches the certificate, the certificate
has not expired, and c2pa itself accepts the pair (a trial signature of a 1x1 image).
"""

from __future__ import annotations

import datetime as dt
import io
import os
from dataclasses import dataclass
from pathlib import Path

from pixelsmith.errors import UserError

ENV = "PIXELSMITH_CREDENTIALS"
EXTRA = "pip install 'pixelsmith[provenance]'"
CA_CERT, CA_KEY = "ca.pem", "ca.key"
SIGNER_CERT, SIGNER_KEY = "signer.pem", "signer.key"
FILES = (CA_CERT, CA_KEY, SIGNER_CERT, SIGNER_KEY)
DOCUMENT_SIGNING = "1.3.6.1.5.5.7.3.36"  # id-kp-documentSigning (RFC 9336)
# The Extended Key Usages c2pa-rs accepts by default (its valid_eku_oids.cfg): emailProtection,
# documentSigning, timeStamping, OCSPSigning, Microsoft's C2PA signing, C2PA claim signing. The
# Python binding's default context does not load that list and then accepts emailProtection
# alone, so every context pixelsmith makes passes it.
SIGNING_EKUS = (
    "1.3.6.1.5.5.7.3.4",
    DOCUMENT_SIGNING,
    "1.3.6.1.5.5.7.3.8",
    "1.3.6.1.5.5.7.3.9",
    "1.3.6.1.4.1.311.76.59.1.9",
    "1.3.6.1.4.1.62558.2.1",
)
CA_YEARS, SIGNER_YEARS = 10, 5


def c2pa_settings(anchors: bytes = b"", *, signing: bool = False) -> dict:
    """Settings for a c2pa Context: offline, c2pa-rs's EKU list, `anchors` (PEM) as trusted.

    Signing embeds no thumbnail: it costs ~70 ms and ~30 KB per image, and the image is its
    own preview.
    """
    trust = {"trust_config": "\n".join(SIGNING_EKUS)}
    if anchors:
        trust["user_anchors"] = anchors.decode()
    settings = {
        "trust": trust,
        "verify": {"verify_trust": True, "remote_manifest_fetch": False, "ocsp_fetch": False},
    }
    if signing:
        settings["builder"] = {"thumbnail": {"enabled": False}}
    return settings


def require_c2pa():
    """The c2pa module, or a UserError naming the extra to install."""
    try:
        import c2pa
    except ImportError as e:
        raise UserError(
            f"content credentials need c2pa-python, which is not installed: {EXTRA}"
        ) from e
    return c2pa


def _require_cryptography():
    try:
        import cryptography  # noqa: F401
    except ImportError as e:
        raise UserError(
            f"content credentials need the cryptography package, which is not installed: {EXTRA}"
        ) from e


def default_directory() -> Path:
    """`$PIXELSMITH_CREDENTIALS`, else `$XDG_CONFIG_HOME/pixelsmith/credentials` (~/.config)."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV]).expanduser()
    config = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(config) / "pixelsmith" / "credentials"


# ---------------------------------------------------------------- making a local CA and signer


def _name(common_name: str):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pixelsmith"),
        ]
    )


def _key_usage(*, sign: bool, ca: bool):
    from cryptography import x509

    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _make_pair(name: str, now: dt.datetime):
    """A CA (key, certificate) and a leaf (key, certificate) the CA issued, both ES256."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"{name} CA")
    start = now - dt.timedelta(minutes=5)  # tolerate a clock a little behind
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(now + dt.timedelta(days=365 * CA_YEARS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(sign=False, ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    eku = [ExtendedKeyUsageOID.EMAIL_PROTECTION, ObjectIdentifier(DOCUMENT_SIGNING)]
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(now + dt.timedelta(days=365 * SIGNER_YEARS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(sign=True, ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(eku), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return ca_key, ca, key, leaf


def _pem_key(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _pem_cert(cert) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM)


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write through a temporary file created with `mode`, fsync it, rename it over `path`."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)  # the umask may have narrowed or os.open kept an old file's mode
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def init_credentials(
    directory: Path | None = None, *, name: str = "pixelsmith local", force: bool = False
) -> Path:
    """Make a local CA and a signing certificate it issued in `directory`; return the directory.

    Writes ca.pem, ca.key, signer.pem (the leaf, then the CA) and signer.key; the keys with mode
    0600. Refuses to replace existing credentials unless `force`.
    """
    _require_cryptography()
    directory = Path(directory).expanduser() if directory else default_directory()
    if not name.strip():
        raise UserError("--name is empty; give the signer a name (e.g. --name 'Ada's laptop')")
    if directory.exists() and not directory.is_dir():
        raise UserError(f"{directory} is a file, not a directory; give --dir a directory")
    present = [f for f in FILES if (directory / f).exists()]
    if present and not force:
        raise UserError(
            f"{directory} already holds credentials ({', '.join(present)}); pass --force to "
            "replace them (images signed with the old ones are then no longer trusted here)"
        )
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as e:
        raise UserError(f"cannot create {directory} ({e.strerror}); give another --dir") from e
    ca_key, ca, key, leaf = _make_pair(name.strip(), dt.datetime.now(dt.UTC))
    try:
        _write(directory / CA_KEY, _pem_key(ca_key), 0o600)
        _write(directory / SIGNER_KEY, _pem_key(key), 0o600)
        _write(directory / CA_CERT, _pem_cert(ca), 0o644)
        _write(directory / SIGNER_CERT, _pem_cert(leaf) + _pem_cert(ca), 0o644)
    except OSError as e:
        raise UserError(f"cannot write to {directory} ({e.strerror}); give another --dir") from e
    return directory


# ---------------------------------------------------------------- loading a signer


@dataclass(frozen=True)
class CredentialSigner:
    """What signing needs: the certificate chain (leaf first), its key (PKCS#8) and algorithm."""

    chain_pem: bytes
    key_pem: bytes
    alg: str  # "es256", "es384", "es512", "ps256" or "ed25519"
    subject: str
    issuer: str
    not_after: str
    cert_path: Path
    key_path: Path

    def c2pa_signer(self):
        """A fresh c2pa.Signer (one per signature, so threads never share one)."""
        c2pa = require_c2pa()
        return c2pa.Signer.from_info(
            c2pa.C2paSignerInfo(self.alg.encode(), self.chain_pem, self.key_pem, None)
        )

    def anchors_pem(self) -> bytes:
        """The chain's last certificate when it is a CA: what a reader here may trust."""
        from cryptography import x509

        last = x509.load_pem_x509_certificates(self.chain_pem)[-1]
        try:
            is_ca = last.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            is_ca = False
        return _pem_cert(last) if is_ca else b""


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as e:
        raise UserError(f"{what} {path} does not exist; give the path of a PEM file") from e
    except IsADirectoryError as e:
        raise UserError(f"{what} {path} is a directory; give the path of a PEM file") from e
    except OSError as e:
        raise UserError(f"cannot read {what} {path} ({e.strerror})") from e


def _certificates(path: Path, what: str = "certificate") -> list:
    """The certificates in a PEM file, or a UserError naming it."""
    from cryptography import x509

    data = _read(path, what)
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as e:
        raise UserError(
            f"{what} {path} holds no PEM certificate (-----BEGIN CERTIFICATE-----); give the "
            "certificate file, not a key or a DER file"
        ) from e
    return certs


def _private_key(path: Path):
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    data = _read(path, "key")
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError as e:
        raise UserError(
            f"key {path} is encrypted; give an unencrypted PEM key "
            "(openssl pkey -in KEY -out plain.pem) and keep it mode 0600"
        ) from e
    except (ValueError, UnsupportedAlgorithm) as e:
        raise UserError(f"key {path} is not a PEM private key; give the signing key file") from e


def _alg(key, path: Path) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if isinstance(key, ec.EllipticCurvePrivateKey):
        algs = {"secp256r1": "es256", "secp384r1": "es384", "secp521r1": "es512"}
        if key.curve.name in algs:
            return algs[key.curve.name]
    elif isinstance(key, rsa.RSAPrivateKey):
        return "ps256"
    elif isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    raise UserError(
        f"key {path} is of a kind C2PA cannot sign with; use ECDSA P-256/384/521, RSA or Ed25519"
    )


def _public(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _dn(name) -> str:
    from cryptography.x509.oid import NameOID

    cn = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return cn[0].value if cn else name.rfc4514_string()


def _profile_problem(leaf) -> str:
    """Which of C2PA's rules for a signing certificate `leaf` breaks, in words (c2pa judges)."""
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

    if leaf.issuer == leaf.subject:
        return (
            "it is self-signed, and C2PA accepts only a signing certificate issued by a CA "
            "(make one with `pixelsmith credentials init`)"
        )
    ext = leaf.extensions
    try:
        usage = ext.get_extension_for_class(x509.KeyUsage)
        if not (usage.critical and usage.value.digital_signature):
            raise x509.ExtensionNotFound("", usage.oid)
    except x509.ExtensionNotFound:
        return "C2PA asks for a critical Key Usage extension with digitalSignature"
    try:
        eku = set(ext.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        eku = set()
    if not eku & {ObjectIdentifier(o) for o in SIGNING_EKUS[:2] + SIGNING_EKUS[4:]} or (
        ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in eku
    ):
        return (
            "C2PA asks for an Extended Key Usage of emailProtection, documentSigning or C2PA "
            "claim signing (and not anyExtendedKeyUsage)"
        )
    try:
        ext.get_extension_for_class(x509.AuthorityKeyIdentifier)
    except x509.ExtensionNotFound:
        return "C2PA asks for an Authority Key Identifier naming the issuing CA's key"
    return (
        "C2PA asks for a CA-issued certificate with a critical Key Usage digitalSignature, an "
        "Extended Key Usage such as emailProtection or documentSigning, and an Authority Key "
        "Identifier"
    )


def _trial_signature(signer: CredentialSigner, leaf) -> None:
    """Sign a 1x1 PNG, so c2pa judges the certificate before any real work."""
    from PIL import Image

    c2pa = require_c2pa()
    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, "PNG")
    manifest = {
        "claim_generator_info": [{"name": "pixelsmith credential check"}],
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.created",
                            "digitalSourceType": "http://cv.iptc.org/newscodes/"
                            "digitalsourcetype/digitalCreation",
                        }
                    ]
                },
            }
        ],
    }
    context = c2pa.Context.from_dict(c2pa_settings(signing=True))
    try:
        c2pa.Builder(manifest, context).sign(
            signer.c2pa_signer(), "image/png", io.BytesIO(buf.getvalue()), io.BytesIO()
        )
    except c2pa.C2paError as e:
        said = " ".join(str(e).split(": ", 1)[-1].split())
        raise UserError(
            f"c2pa refuses the certificate {signer.cert_path} ({said}): {_profile_problem(leaf)}"
        ) from e


def load_signer(
    directory: Path | None = None, *, cert: Path | None = None, key: Path | None = None
) -> CredentialSigner:
    """The signer in `directory` (default: `default_directory()`), or the `cert` chain + `key`."""
    _require_cryptography()
    if (cert is None) != (key is None):
        raise UserError("give both --cert CHAIN.pem and --key KEY.pem, or neither")
    if cert is not None and directory is not None:
        raise UserError("give either a credentials --dir or --cert and --key, not both")
    if cert is None:
        directory = Path(directory).expanduser() if directory else default_directory()
        cert, key = directory / SIGNER_CERT, directory / SIGNER_KEY
        if not cert.is_file() or not key.is_file():
            raise UserError(
                f"no signing credentials in {directory}; run `pixelsmith credentials init` "
                "(or pass --cert CHAIN.pem --key KEY.pem of your own)"
            )
    cert, key = Path(cert).expanduser(), Path(key).expanduser()
    chain = _certificates(cert)
    private = _private_key(key)
    leaf = chain[0]
    if _public(private.public_key()) != _public(leaf.public_key()):
        raise UserError(
            f"key {key} does not match the certificate {cert} (the first certificate in the "
            "chain must be the one the key signs for)"
        )
    now = dt.datetime.now(dt.UTC)
    if leaf.not_valid_after_utc < now:
        raise UserError(
            f"the certificate {cert} expired on {leaf.not_valid_after_utc:%Y-%m-%d}; renew it "
            "(or run `pixelsmith credentials init --force` for local ones)"
        )
    signer = CredentialSigner(
        chain_pem=b"".join(_pem_cert(c) for c in chain),
        key_pem=_pem_key(private),
        alg=_alg(private, key),
        subject=_dn(leaf.subject),
        issuer=_dn(leaf.issuer),
        not_after=f"{leaf.not_valid_after_utc:%Y-%m-%d}",
        cert_path=cert,
        key_path=key,
    )
    _trial_signature(signer, leaf)
    return signer


def trust_anchors(paths: list[Path]) -> bytes:
    """The PEM certificates in `paths`, checked one by one."""
    return b"".join(_pem_cert(c) for p in paths for c in _certificates(Path(p), "trust file"))
