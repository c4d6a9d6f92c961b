"""Content credentials (C2PA): a local CA signs PNG, JPEG and WebP; c2pa's own reader judges."""

from __future__ import annotations

import datetime as dt
import io
import json
import stat
import struct
import sys
import time
import zlib

import c2pa
import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from PIL import Image

from pixelsmith.cli.main import main
from pixelsmith.errors import UserError
from pixelsmith.provenance.credentials import (
    COMPOSITE,
    TRAINED,
    Claim,
    Parent,
    describe,
    init_credentials,
    load_signer,
    read_credentials,
    sign_bytes,
    sign_file,
)
from pixelsmith.provenance.credentials_signer import ENV
from pixelsmith.version import __version__

FORMATS = {
    "png": ("PNG", "image/png"),
    "jpeg": ("JPEG", "image/jpeg"),
    "webp": ("WEBP", "image/webp"),
}
WATERMARK = {"alg": "pixelsmith.watermark.ss1", "key_id": "k-7f3a", "message": "a5c3"}


@pytest.fixture
def creds(tmp_path, monkeypatch):
    """A fresh local CA and signer in the credentials directory the environment names."""
    directory = tmp_path / "creds"
    monkeypatch.setenv(ENV, str(directory))
    init_credentials()
    return directory


def _pixels(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(16, 20, 3), dtype=np.uint8)


def _encode(pixels: np.ndarray, kind: str) -> bytes:
    buf = io.BytesIO()
    extra = {"JPEG": {"quality": 95}, "WEBP": {"lossless": True}}.get(FORMATS[kind][0], {})
    Image.fromarray(pixels).save(buf, FORMATS[kind][0], **extra)
    return buf.getvalue()


def _decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _created(**kw) -> Claim:
    base = dict(model="dcgan-fmnist", model_sha256="ab12" * 16, soft_binding=dict(WATERMARK))
    return Claim("created", **{**base, **kw})


def _codes(results: dict, kind: str) -> set[str]:
    return {r["code"] for r in results.get("activeManifest", {}).get(kind, [])}


def _chunks(png: bytes) -> list[tuple[bytes, int, int]]:
    """(type, offset, payload length) of each PNG chunk."""
    out, pos = [], 8
    while pos < len(png):
        (n,) = struct.unpack(">I", png[pos : pos + 4])
        out.append((png[pos + 4 : pos + 8], pos, n))
        pos += 12 + n
    return out


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload))
    )


# ---------------------------------------------------------------- the local CA


def test_init_makes_a_ca_and_a_signer_it_issued_with_private_keys_0600(creds):
    names = {p.name: stat.S_IMODE(p.stat().st_mode) for p in creds.iterdir()}
    assert set(names) == {"ca.pem", "ca.key", "signer.pem", "signer.key"}
    assert names["ca.key"] == names["signer.key"] == 0o600
    ca = x509.load_pem_x509_certificate((creds / "ca.pem").read_bytes())
    leaf, chain_ca = x509.load_pem_x509_certificates((creds / "signer.pem").read_bytes())
    assert chain_ca == ca and leaf.issuer == ca.subject != leaf.subject
    ca.public_key().verify(leaf.signature, leaf.tbs_certificate_bytes, ec.ECDSA(hashes.SHA256()))
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.EMAIL_PROTECTION in eku
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca

    before = (creds / "ca.pem").read_bytes()
    with pytest.raises(UserError, match="already holds credentials.*--force"):
        init_credentials()
    assert (creds / "ca.pem").read_bytes() == before
    init_credentials(force=True, name="studio")
    assert (creds / "ca.pem").read_bytes() != before
    assert load_signer().subject == "studio"


# ---------------------------------------------------------------- signing and reading


@pytest.mark.parametrize("kind", FORMATS)
def test_a_signed_image_validates_with_c2pas_reader_and_says_what_the_claim_said(
    kind, creds, tmp_path, monkeypatch
):
    pixels = _pixels()
    original = _encode(pixels, kind)
    signed = sign_bytes(original, FORMATS[kind][1], _created(), load_signer())
    assert len(signed) > len(original)
    np.testing.assert_array_equal(_decode(signed), _decode(original))  # the same image

    # c2pa's own reader: a valid signature, untrusted until its CA is an anchor.
    reader = c2pa.Reader(FORMATS[kind][1], io.BytesIO(signed))
    assert reader.get_validation_state() == "Valid"
    assert _codes(reader.get_validation_results(), "failure") == {"signingCredential.untrusted"}
    ca = (creds / "ca.pem").read_text()
    with c2pa.Context.from_dict({"trust": {"user_anchors": ca}}) as context:
        trusted = c2pa.Reader(FORMATS[kind][1], io.BytesIO(signed), None, context)
        assert trusted.get_validation_state() == "Trusted"

    assert read_credentials(signed, trust=[creds / "ca.pem"], trust_local=False).status == (
        "trusted"
    )
    assert read_credentials(signed).status == "trusted"  # the local CA, where it is installed
    monkeypatch.setenv(ENV, str(tmp_path / "elsewhere"))  # a machine without the local CA
    found = read_credentials(signed)
    assert found.status == "untrusted" and found.trust == []
    assert [f["code"] for f in found.failures] == ["signingCredential.untrusted"]

    assert [a["action"] for a in found.actions] == ["c2pa.created"]
    assert found.digital_source_type == TRAINED
    assert (found.model, found.model_sha256) == ("dcgan-fmnist", "ab12" * 16)
    assert found.soft_binding == WATERMARK
    assert found.claim_generator == f"pixelsmith {__version__}"
    assert found.signer["subject"] == "CN=pixelsmith local, O=pixelsmith"
    assert found.signer["issuer"] == "CN=pixelsmith local CA, O=pixelsmith"
    assert found.format == FORMATS[kind][1] and found.ingredients == []
    assert json.loads(json.dumps(found.to_dict()))["status"] == "untrusted"


def test_an_image_without_a_manifest_reads_as_none(creds):
    found = read_credentials(_encode(_pixels(), "png"))
    assert found.status == "none" and found.manifest is None and found.actions == []


@pytest.mark.slow  # waits ~2 s for the certificate to expire
def test_an_expired_signer_reads_as_untrusted_not_tampered_and_is_refused_for_signing(
    creds, tmp_path
):
    ca = x509.load_pem_x509_certificate((creds / "ca.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((creds / "ca.key").read_bytes(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    usage = x509.KeyUsage(True, False, False, False, False, False, False, False, False)
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "brief")]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(seconds=1))
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False)
    )
    pem = serialization.Encoding.PEM
    (tmp_path / "brief.key").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    # c2pa refuses a CA-issued leaf without an Authority Key Identifier, and says which rule.
    (tmp_path / "brief.pem").write_bytes(
        leaf.sign(ca_key, hashes.SHA256()).public_bytes(pem) + ca.public_bytes(pem)
    )
    said = _refused(
        "c2pa refuses", load_signer, cert=tmp_path / "brief.pem", key=tmp_path / "brief.key"
    )
    assert "Authority Key Identifier" in said
    aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())
    leaf = leaf.add_extension(aki, False).sign(ca_key, hashes.SHA256())
    (tmp_path / "brief.pem").write_bytes(leaf.public_bytes(pem) + ca.public_bytes(pem))
    signer = load_signer(cert=tmp_path / "brief.pem", key=tmp_path / "brief.key")
    signed = sign_bytes(_encode(_pixels(9), "png"), None, _created(), signer)
    time.sleep(
        max(0.0, (now + dt.timedelta(seconds=2.1) - dt.datetime.now(dt.UTC)).total_seconds())
    )
    found = read_credentials(signed)
    assert found.validation_state == "Invalid"  # c2pa's word; the content is intact
    assert "signingCredential.expired" in {f["code"] for f in found.failures}
    assert found.status == "untrusted"
    assert "certificate fails (signingCredential.expired" in describe(found)[0]
    _refused("expired on", load_signer, cert=tmp_path / "brief.pem", key=tmp_path / "brief.key")


def test_a_certificate_of_the_users_own_signs_and_is_trusted_by_its_ca(creds, tmp_path):
    ca = x509.load_pem_x509_certificate((creds / "ca.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((creds / "ca.key").read_bytes(), None)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime.now(dt.UTC)
    usage = x509.KeyUsage(True, False, False, False, False, False, False, False, False)
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "newsroom")]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(11)
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36")]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (tmp_path / "chain.pem").write_bytes(leaf.public_bytes(pem) + ca.public_bytes(pem))
    (tmp_path / "rsa.key").write_bytes(  # PKCS#1, as openssl genrsa writes it
        key.private_bytes(
            pem, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
    )
    signer = load_signer(cert=tmp_path / "chain.pem", key=tmp_path / "rsa.key")
    assert signer.alg == "ps256" and signer.subject == "newsroom"
    signed = sign_bytes(_encode(_pixels(10), "jpeg"), None, _created(), signer)
    found = read_credentials(signed, trust=[creds / "ca.pem"], trust_local=False)
    assert found.status == "trusted" and found.signer["subject"] == "CN=newsroom"
    assert read_credentials(signed, trust_local=False).status == "untrusted"


def _change_one_pixel_png(signed: bytes) -> bytes:
    """Decode, change one value, re-encode the pixels into IDAT; every other chunk kept."""
    pixels = _decode(signed).copy()
    pixels[3, 4, 1] ^= 0x10
    raw = b"".join(b"\x00" + row.tobytes() for row in pixels)
    chunks = _chunks(signed)
    idat = [i for i, c in enumerate(chunks) if c[0] == b"IDAT"]
    out = bytearray(signed[:8])
    for i, (_, pos, n) in enumerate(chunks):
        if i == idat[0]:
            out += _chunk(b"IDAT", zlib.compress(raw))
        elif i not in idat:
            out += signed[pos : pos + 12 + n]
    return bytes(out)


def _flip_image_byte(signed: bytes, kind: str) -> bytes:
    """Change one byte of the compressed image data (JPEG scan, WebP VP8L), manifest kept."""
    if kind == "jpeg":
        start, end = signed.rindex(b"\xff\xda") + 20, signed.rindex(b"\xff\xd9")
    else:
        start = signed.index(b"VP8L") + 8 + 10
        end = start + 20
    out = bytearray(signed)
    at = next(i for i in range((start + end) // 2, end) if out[i] not in (0x00, 0xFE, 0xFF))
    out[at] ^= 0x01
    return bytes(out)


@pytest.mark.parametrize("kind", FORMATS)
def test_a_changed_pixel_reads_as_tampered(kind, creds):
    signed = sign_bytes(_encode(_pixels(1), kind), None, _created(), load_signer())
    if kind == "png":
        changed = _change_one_pixel_png(signed)
        assert (_decode(changed) != _decode(signed)).sum() == 1
        manifest = [signed[p : p + 12 + n] for t, p, n in _chunks(signed) if t == b"caBX"]
        assert manifest and manifest[0] in changed  # the manifest bytes are kept as they were
    else:
        changed = _flip_image_byte(signed, kind)
    assert read_credentials(signed).status == "trusted"
    found = read_credentials(changed)
    assert found.status == "tampered"
    assert found.validation_state == "Invalid"
    assert "assertion.dataHash.mismatch" in {f["code"] for f in found.failures}
    assert found.model == "dcgan-fmnist"  # what it claimed is still shown beside the verdict


def test_an_edit_of_a_credentialed_image_keeps_the_chain(creds, tmp_path, monkeypatch):
    signer = load_signer()
    parent = sign_bytes(_encode(_pixels(2), "jpeg"), "image/jpeg", _created(), signer)
    parent_label = read_credentials(parent).manifest
    edited = _encode(255 - _pixels(2), "png")
    claim = Claim(
        "edited",
        model="zoo:denoise",
        operation="denoise",
        options={"sigma": 0.1, "tile": (64, 64)},
        parent=Parent(parent, "image/jpeg", "photo.jpg"),
        title="photo-denoised.png",
    )
    child = sign_bytes(edited, "image/png", claim, signer)

    found = read_credentials(child)
    assert found.status == "trusted"
    assert [a["action"] for a in found.actions] == ["c2pa.opened", "c2pa.edited"]
    assert found.operation == "denoise" and found.options == {"sigma": 0.1, "tile": [64, 64]}
    assert found.digital_source_type == COMPOSITE and found.title == "photo-denoised.png"
    (ingredient,) = found.ingredients
    assert (ingredient["title"], ingredient["relationship"]) == ("photo.jpg", "parentOf")
    assert ingredient["format"] == "image/jpeg" and ingredient["status"] == "trusted"
    assert ingredient["manifest"]["manifest"] == parent_label
    assert ingredient["manifest"]["digital_source_type"] == TRAINED
    assert ingredient["manifest"]["model"] == "dcgan-fmnist"
    assert ingredient["manifest"]["soft_binding"] == WATERMARK

    # c2pa's reader holds both manifests, the parent's as the ingredient's own.
    store = json.loads(c2pa.Reader("image/png", io.BytesIO(child)).json())
    assert set(store["manifests"]) == {found.manifest, parent_label}
    active = store["manifests"][store["active_manifest"]]
    assert active["ingredients"][0]["active_manifest"] == parent_label

    monkeypatch.setenv(ENV, str(tmp_path / "elsewhere"))
    elsewhere = read_credentials(child)
    assert elsewhere.status == "untrusted" and elsewhere.ingredients[0]["status"] == "untrusted"


def test_an_edit_of_a_plain_image_records_it_without_a_manifest(creds):
    plain = _encode(_pixels(3), "webp")
    claim = Claim("edited", operation="autocontrast", parent=(plain, "image/webp"))
    found = read_credentials(sign_bytes(_encode(_pixels(4), "webp"), None, claim, load_signer()))
    assert found.status == "trusted"
    (ingredient,) = found.ingredients
    assert ingredient["status"] == "none" and ingredient["manifest"] is None
    assert found.digital_source_type is None  # no model: not AI media


def test_sign_file_writes_in_place_or_to_out(creds, tmp_path):
    src = tmp_path / "a.png"
    src.write_bytes(_encode(_pixels(5), "png"))
    out = sign_file(src, _created(), load_signer(), tmp_path / "b.png")
    assert read_credentials(out).title == "b.png" and read_credentials(src).status == "none"
    with pytest.raises(UserError, match=r"keeps the image PNG: name it b\.png"):
        sign_file(src, _created(), load_signer(), tmp_path / "b.jpg")


# ---------------------------------------------------------------- refusals


def _self_signed(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "me")])
    now = dt.datetime.now(dt.UTC)
    usage = x509.KeyUsage(True, False, False, False, False, False, False, False, False)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False)
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "me.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "me.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,  # SEC1: converted for c2pa
            serialization.NoEncryption(),
        )
    )
    return tmp_path / "me.pem", tmp_path / "me.key"


def _refused(match: str, call, *args, **kw) -> str:
    """The one-line UserError `call` raises."""
    with pytest.raises(UserError, match=match) as e:
        call(*args, **kw)
    assert "\n" not in str(e.value)
    return str(e.value)


def test_a_self_signed_certificate_is_refused_in_c2pas_words(creds, tmp_path):
    cert, key = _self_signed(tmp_path)
    said = _refused("c2pa refuses", load_signer, cert=cert, key=key)
    assert "certificate is invalid" in said and "self-signed" in said and str(cert) in said


def test_refusals_are_one_sentence_before_any_work(creds, tmp_path, monkeypatch):
    cert, key = _self_signed(tmp_path)
    signer_pem, signer_key = creds / "signer.pem", creds / "signer.key"
    _refused("does not match the certificate", load_signer, cert=signer_pem, key=key)
    _refused("give both --cert", load_signer, cert=signer_pem)
    _refused("holds no PEM certificate", load_signer, cert=signer_key, key=signer_key)
    _refused("is not a PEM private key", load_signer, cert=signer_pem, key=signer_pem)
    assert load_signer(cert=signer_pem, key=signer_key).alg == "es256"
    signer = load_signer()

    _refused("not an image", read_credentials, b"plain text, no pixels")
    gif = io.BytesIO()
    Image.new("P", (4, 4)).save(gif, "GIF")
    _refused(
        "is a GIF image.*PNG, JPEG and WebP", sign_bytes, gif.getvalue(), None, _created(), signer
    )
    png = _encode(_pixels(), "png")
    _refused("is PNG, not image/jpeg", sign_bytes, png, "image/jpeg", _created(), signer)

    signed = sign_bytes(_encode(_pixels(6), "png"), None, _created(), signer)
    ((_, pos, n),) = [c for c in _chunks(signed) if c[0] == b"caBX"]
    payload = bytearray(signed[pos + 8 : pos + 8 + n])
    payload[20] ^= 0xFF  # inside the JUMBF box headers: the manifest no longer parses
    damaged = signed[:pos] + _chunk(b"caBX", bytes(payload)) + signed[pos + 12 + n :]
    _refused("cannot read.*damaged", read_credentials, damaged)
    edit = Claim("edited", parent=(damaged, None))
    _refused("damaged, so the edit cannot record it", sign_bytes, signed, None, edit, signer)

    monkeypatch.setenv(ENV, str(tmp_path / "nothing-here"))
    _refused(
        r"no signing credentials in .*nothing-here; run `pixelsmith credentials init`", load_signer
    )


# ---------------------------------------------------------------- the command line


def test_cli_init_sign_and_show_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(ENV, str(tmp_path / "unused"))
    creds = tmp_path / "mine"
    assert main(["credentials", "init", "--dir", str(creds), "--name", "cli test"]) == 0
    said = capsys.readouterr().out
    assert str(creds) in said and "trusted only on machines where ca.pem is installed" in said

    src, out = tmp_path / "in.jpg", tmp_path / "out.jpg"
    src.write_bytes(_encode(_pixels(7), "jpeg"))
    assert main(["credentials", "sign", str(src), "-o", str(out), "--dir", str(creds),
                 "--model", "dcgan"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["credentials", "show", str(out), "--json", "--trust", str(creds / "ca.pem")]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["status"] == "trusted" and shown["model"] == "dcgan"
    assert shown["signer"]["subject"] == "CN=cli test, O=pixelsmith"

    assert main(["credentials", "show", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"{out}: untrusted") and "model dcgan" in text

    edit = tmp_path / "edit.jpg"
    edit.write_bytes(_encode(_pixels(8), "jpeg"))
    args = ["credentials", "sign", str(edit), "-o", str(tmp_path / "e.jpg"), "--dir", str(creds)]
    assert main([*args, "--parent", str(out), "--operation", "blur", "--option", "sigma=1.5"]) == 0
    found = read_credentials(tmp_path / "e.jpg", trust=[creds / "ca.pem"])
    assert found.options == {"sigma": 1.5} and found.ingredients[0]["status"] == "trusted"

    (tmp_path / "notes.txt").write_text("not an image")
    capsys.readouterr()
    assert main(["credentials", "show", str(tmp_path / "notes.txt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pixelsmith: error:") and "not an image" in err and err.count("\n") == 1
    assert main(["credentials", "sign", str(src), "-o", str(tmp_path / "x.jpg")]) == 2
    assert "run `pixelsmith credentials init`" in capsys.readouterr().err
    assert main(["credentials", "init", "--dir", str(creds)]) == 2


def test_without_the_extra_the_error_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "c2pa", None)  # import c2pa now raises ImportError
    _refused(r"pip install 'pixelsmith\[provenance\]'", read_credentials, b"\x89PNG\r\n\x1a\n")
