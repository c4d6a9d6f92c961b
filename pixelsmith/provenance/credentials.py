"""Signed content credentials (C2PA): a manifest in the image file saying how it was made.

A manifest is a list of assertions signed with a certificate and bound to the file's bytes by a
hash. pixelsmith writes three kinds (through c2pa-python, offline, without a time-stamp server):

- `c2pa.actions`: `c2pa.created` for a generated image (IPTC digital source type
  `trainedAlgorithmicMedia`), or `c2pa.opened` + `c2pa.edited` for an edit (the operation and
  its options; `compositeWithTrainedAlgorithmicMedia` when a model did it). The action's
  `softwareAgent` is pixelsmith and its `parameters` hold `model`, `model_sha256`,
  `operation` and `options` (as JSON text: c2pa-rs would turn a list of small integers into
  bytes).
- `c2pa.soft-binding`: the invisible watermark in the pixels (its `alg`; the message as the
  block value; its other fields, such as `key_id`, as JSON in `alg-params`), so a copy whose
  manifest was stripped can still be tied back to it. c2pa 0.38 accepts this assertion as is.
- an ingredient: the input file of an edit, `parentOf`, with the input's own manifest when it had
  one, so the chain of credentials survives the edit.

`read_credentials` validates with c2pa's own Reader and reports one of four statuses: `none` (no
manifest), `tampered` (a hash or the signature fails: the pixels or the manifest changed after
signing), `untrusted` (the content is as signed, but the signer's CA is not trusted here, or its
certificate fails: expired, not a C2PA signing certificate), `trusted` (valid, by a CA given in
`trust` or the local CA in the credentials directory; the local CA is trusted only where it is
installed).
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pixelsmith.errors import UserError
from pixelsmith.provenance.credentials_signer import (
    CA_CERT,
    CredentialSigner,
    c2pa_settings,
    default_directory,
    init_credentials,
    load_signer,
    require_c2pa,
    trust_anchors,
)
from pixelsmith.utils.files import atomic_write_bytes
from pixelsmith.version import __version__

__all__ = [
    "Claim",
    "ContentCredentials",
    "CredentialSigner",
    "Parent",
    "describe",
    "image_mime",
    "init_credentials",
    "load_signer",
    "read_credentials",
    "sign_bytes",
    "sign_file",
]

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
TRAINED = IPTC + "trainedAlgorithmicMedia"
COMPOSITE = IPTC + "compositeWithTrainedAlgorithmicMedia"
SOFT_BINDING = "c2pa.soft-binding"
MIMES = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WebP"}
SUFFIXES = {"image/png": (".png",), "image/jpeg": (".jpg", ".jpeg"), "image/webp": (".webp",)}
STATUSES = ("none", "tampered", "untrusted", "trusted")
CREDENTIAL = "signingCredential."  # the codes about the certificate, not the content


def _software() -> str:
    return f"pixelsmith {__version__}"


@dataclass(frozen=True)
class Parent:
    """The input file of an edit: its encoded bytes (with any manifest they carry) and name."""

    data: bytes
    mime: str | None = None  # sniffed from the bytes when None
    title: str = "input"


@dataclass
class Claim:
    """What a manifest says about an image: created by a model, or an edit of a parent."""

    action: str  # "created" | "edited"
    software: str = field(default_factory=_software)
    model: str | None = None
    model_sha256: str | None = None
    operation: str | None = None
    options: dict = field(default_factory=dict)
    soft_binding: dict | None = None  # {"alg": ..., "message": ..., "key_id": ..., ...}
    parent: Parent | tuple | None = None  # Parent, or (bytes, mime)
    title: str | None = None  # the file name the manifest records (dc:title)
    digital_source_type: str | None = None  # default: by action and model (module docstring)

    def __post_init__(self) -> None:
        if self.action not in ("created", "edited"):
            raise ValueError(f"Claim.action is 'created' or 'edited', not {self.action!r}")
        if isinstance(self.parent, tuple):
            self.parent = Parent(*self.parent)
        if self.action == "edited" and self.parent is None:
            raise ValueError("an edited Claim needs its parent: Parent(input bytes, mime)")
        if self.action == "created" and self.parent is not None:
            raise ValueError("a created Claim has no parent; an image made from another is edited")
        if self.soft_binding is not None and not self.soft_binding.get("alg"):
            raise ValueError("Claim.soft_binding needs its 'alg' (e.g. pixelsmith.watermark.ss1)")


# ---------------------------------------------------------------- formats


def _pillow_format(data: bytes) -> str | None:
    """The name of a raster format Pillow recognises (header only), or None."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data), formats=["BMP", "GIF", "TIFF", "PPM", "ICO"]) as im:
            return im.format
    except Exception:  # Pillow raises many kinds on a file that is none of these
        return None


def image_mime(data: bytes, name: str = "the image") -> str:
    """The MIME type of a PNG, JPEG or WebP file by its bytes, or a UserError naming `name`."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    found = _pillow_format(data)
    if found:
        raise UserError(
            f"{name} is a {found} image; content credentials work on PNG, JPEG and WebP: "
            "convert it to one of them first"
        )
    raise UserError(f"{name} is not an image (PNG, JPEG or WebP); give an image file")


def _normal_mime(mime: str) -> str:
    mime = mime.lower().strip()
    return {"image/jpg": "image/jpeg", "image/x-webp": "image/webp"}.get(mime, mime)


def _said(error: Exception) -> str:
    """c2pa's message without its class prefix ("Signature: ..."), on one line."""
    text = " ".join(str(error).split())
    head, _, rest = text.partition(": ")
    return rest if rest and " " not in head else text


# ---------------------------------------------------------------- signing


def _agent(software: str) -> dict:
    name, _, version = software.strip().rpartition(" ")
    if not name or not version[:1].isdigit():
        return {"name": software.strip()}
    return {"name": name, "version": version}


def _jsonable(value: Any) -> Any:
    """Options as JSON can hold them (paths, tuples and numpy scalars as text or lists)."""
    return json.loads(json.dumps(value, default=str))


def _soft_binding_assertion(binding: dict) -> dict:
    params = {k: v for k, v in binding.items() if k not in ("alg", "message")}
    data: dict[str, Any] = {
        "alg": str(binding["alg"]),
        "blocks": [{"scope": {}, "value": str(binding.get("message", ""))}],
    }
    if params:
        data["alg-params"] = json.dumps(_jsonable(params), sort_keys=True)
    return {"label": SOFT_BINDING, "data": data}


def _manifest(claim: Claim) -> dict:
    agent = _agent(claim.software)
    params: dict[str, Any] = {}
    for key in ("model", "model_sha256", "operation"):
        if getattr(claim, key):
            params[key] = getattr(claim, key)
    if claim.options:
        # As JSON text: c2pa-rs turns a list of small integers (a tile size) into CBOR bytes.
        params["options"] = json.dumps(_jsonable(claim.options), sort_keys=True)
    action: dict[str, Any] = {"action": f"c2pa.{claim.action}", "softwareAgent": agent}
    source = claim.digital_source_type
    if source is None:
        source = TRAINED if claim.action == "created" else (COMPOSITE if claim.model else None)
    if source:
        action["digitalSourceType"] = source
    if params:
        action["parameters"] = params
    assertions = [{"label": "c2pa.actions", "data": {"actions": [action]}}]
    if claim.soft_binding:
        assertions.append(_soft_binding_assertion(claim.soft_binding))
    manifest: dict[str, Any] = {"claim_generator_info": [agent], "assertions": assertions}
    if claim.title:
        manifest["title"] = claim.title
    return manifest


def sign_bytes(data: bytes, mime: str | None, claim: Claim, signer: CredentialSigner) -> bytes:
    """The same encoded image with a signed C2PA manifest embedded (PNG, JPEG or WebP)."""
    c2pa = require_c2pa()
    actual = image_mime(data)
    if mime and _normal_mime(mime) != actual:
        raise UserError(f"the image is {MIMES[actual]}, not {mime}; name its real type")
    with (
        c2pa.Context.from_dict(c2pa_settings(signer.anchors_pem(), signing=True)) as context,
        c2pa.Builder(_manifest(claim), context) as builder,
    ):
        parent = claim.parent
        if isinstance(parent, tuple):
            parent = Parent(*parent)
        if parent is not None:
            parent_mime = image_mime(parent.data, f"the input {parent.title}")
            ingredient = {"title": parent.title, "relationship": "parentOf"}
            try:
                builder.add_ingredient(ingredient, parent_mime, io.BytesIO(parent.data))
            except c2pa.C2paError as e:
                raise UserError(
                    f"the input {parent.title} carries a C2PA manifest c2pa cannot read "
                    f"({_said(e)}); it is damaged, so the edit cannot record it as its parent"
                ) from e
            builder.set_intent(c2pa.C2paBuilderIntent.EDIT)  # adds c2pa.opened of the parent
        out = io.BytesIO()
        try:
            builder.sign(signer.c2pa_signer(), actual, io.BytesIO(data), out)
        except c2pa.C2paError as e:
            raise UserError(f"c2pa could not sign the {MIMES[actual]} image ({_said(e)})") from e
    return out.getvalue()


def read_file_bytes(path: Path, what: str = "image") -> bytes:
    """The bytes of a file, or a UserError naming it."""
    try:
        return path.read_bytes()
    except FileNotFoundError as e:
        raise UserError(f"{what} {path} does not exist") from e
    except IsADirectoryError as e:
        raise UserError(f"{what} {path} is a directory; give an image file") from e
    except OSError as e:
        raise UserError(f"cannot read {what} {path} ({e.strerror})") from e


def check_output(out: Path, mime: str) -> None:
    """Refuse an output name whose suffix says another format than the image keeps."""
    if out.suffix.lower() not in SUFFIXES[mime]:
        raise UserError(
            f"{out} names a {out.suffix or 'suffix-less'} file, but signing keeps the image "
            f"{MIMES[mime]}: name it {out.stem}{SUFFIXES[mime][0]}"
        )
    if not out.parent.is_dir():
        raise UserError(f"the folder of {out} does not exist; create it or give another -o")


def sign_file(
    path: str | os.PathLike,
    claim: Claim,
    signer: CredentialSigner,
    out: str | os.PathLike | None = None,
) -> Path:
    """Sign the image at `path` into `out` (default: in place, atomically); return `out`."""
    path = Path(path)
    out = Path(out) if out is not None else path
    data = read_file_bytes(path)
    mime = image_mime(data, str(path))
    check_output(out, mime)
    if claim.title is None:
        claim.title = out.name
    signed = sign_bytes(data, mime, claim, signer)
    try:
        atomic_write_bytes(out, signed)
    except OSError as e:
        raise UserError(f"cannot write {out} ({e.strerror})") from e
    return out


# ---------------------------------------------------------------- reading


@dataclass
class ContentCredentials:
    """What `read_credentials` found: the status and the active manifest's summary."""

    status: str  # one of STATUSES
    image: str
    format: str
    trust: list[str]  # the CA files a signer was trusted by
    manifest: str | None = None  # the active manifest's label
    title: str | None = None
    claim_generator: str | None = None
    actions: list[dict] = field(default_factory=list)
    digital_source_type: str | None = None
    model: str | None = None
    model_sha256: str | None = None
    operation: str | None = None
    options: dict | None = None
    soft_binding: dict | None = None
    signer: dict | None = None
    ingredients: list[dict] = field(default_factory=list)
    validation_state: str | None = None  # c2pa's own: Invalid, Valid or Trusted
    validation: dict = field(default_factory=dict)  # c2pa's raw validation results

    def to_dict(self) -> dict:
        """Plain data for JSON."""
        return asdict(self)

    @property
    def failures(self) -> list[dict]:
        """The active manifest's failed checks (code, url, explanation), as c2pa reports them."""
        return list(self.validation.get("activeManifest", {}).get("failure", []))


def _anchors(trust: list[Path] | None, trust_local: bool) -> tuple[bytes, list[str]]:
    paths = [Path(p).expanduser() for p in trust or []]
    local = default_directory() / CA_CERT
    if trust_local and local.is_file() and local not in paths:
        paths.append(local)
    return trust_anchors(paths), [str(p) for p in paths]


def _generator(manifest: dict) -> str | None:
    info = manifest.get("claim_generator_info") or []
    if info:
        return " ".join(str(info[0][k]) for k in ("name", "version") if info[0].get(k))
    return manifest.get("claim_generator")


def _soft_binding(data: dict) -> dict:
    found: dict[str, Any] = {"alg": data.get("alg")}
    blocks = data.get("blocks") or []
    if blocks:
        found["message"] = blocks[0].get("value")
    if data.get("alg-params"):
        try:
            found.update(json.loads(data["alg-params"]))
        except (TypeError, ValueError):
            found["alg-params"] = data["alg-params"]
    return found


def _options(text: Any) -> Any:
    """Options as pixelsmith wrote them (JSON text), or as another signer did."""
    if isinstance(text, str):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def _dn(name: dict | None) -> str | None:
    if not name:
        return None
    return ", ".join(f"{k}={v}" for k, v in name.items())


def _signer(manifest: dict, cr_signature: dict) -> dict:
    info = manifest.get("signature_info") or {}
    cert = cr_signature.get("certificateInfo") or {}
    return {
        "subject": _dn(cert.get("subject")) or info.get("common_name"),
        "issuer": _dn(cert.get("issuer")) or info.get("issuer"),
        "alg": info.get("alg") or cr_signature.get("algorithm"),
        "serial": info.get("cert_serial_number") or cert.get("serialNumber"),
        "time": info.get("time"),
        "not_after": (cert.get("validity") or {}).get("notAfter"),
    }


def _codes(results: dict | None, kind: str) -> set[str]:
    return {r.get("code") for r in (results or {}).get(kind, [])}


def _content_failed(failed: set[str]) -> bool:
    """Whether a failure is about the content (a hash, the signature, the claim's structure)."""
    return any(not (code or "").startswith(CREDENTIAL) for code in failed)


def _status(state: str | None, active: dict) -> str:
    """c2pa's validation state as one of STATUSES.

    c2pa calls a manifest Invalid also when only its certificate fails (expired, revoked, not a
    C2PA signing profile); the content is intact then, its signer not to be trusted: untrusted.
    """
    failed = _codes(active, "failure")
    if _content_failed(failed) or (state == "Invalid" and not failed):
        return "tampered"
    if state == "Trusted" or (
        state is None and f"{CREDENTIAL}trusted" in _codes(active, "success")
    ):
        return "trusted"
    return "untrusted"


def _ingredient_status(ingredient: dict, delta: dict | None) -> str:
    """An ingredient's status: what c2pa recorded when it was added, updated by this reading."""
    if not ingredient.get("active_manifest"):
        return "none"
    recorded = (ingredient.get("validation_results") or {}).get("activeManifest") or {}
    failed = _codes(recorded, "failure") | _codes(delta, "failure")
    if _content_failed(failed):
        return "tampered"
    # The deltas hold only what changed since the recording: a trust the reader's anchors differ on.
    trusted = "signingCredential.trusted" in _codes(recorded, "success")
    if "signingCredential.trusted" in _codes(delta, "success"):
        trusted = True
    if "signingCredential.untrusted" in _codes(delta, "failure"):
        trusted = False
    return "trusted" if trusted else "untrusted"


def _summarise(store: dict, signatures: dict, deltas: dict, label: str, depth: int = 0) -> dict:
    """One manifest's summary, with its ingredients' summaries (the chain) inside."""
    manifest = store["manifests"].get(label) or {}
    actions = []
    soft = None
    for assertion in manifest.get("assertions", []):
        if assertion.get("label", "").startswith("c2pa.actions"):
            for a in assertion.get("data", {}).get("actions", []):
                params = dict(a.get("parameters") or {})
                if "options" in params:
                    params["options"] = _options(params["options"])
                actions.append(
                    {
                        "action": a.get("action"),
                        "digital_source_type": a.get("digitalSourceType"),
                        "software_agent": a.get("softwareAgent"),
                        "parameters": params,
                    }
                )
        elif assertion.get("label") == SOFT_BINDING:
            soft = _soft_binding(assertion.get("data") or {})
    main = next(
        (a for a in actions if a["action"] in ("c2pa.created", "c2pa.edited")),
        actions[0] if actions else {"parameters": {}},
    )
    params = main["parameters"]
    ingredients = []
    for ing in manifest.get("ingredients", []):
        uri = f"self#jumbf=/c2pa/{label}/c2pa.assertions/{ing.get('label')}"
        item = {
            "title": ing.get("title"),
            "relationship": ing.get("relationship"),
            "format": ing.get("format"),
            "status": _ingredient_status(ing, deltas.get(uri)),
            "manifest": None,
        }
        child = ing.get("active_manifest")
        if child and child in store["manifests"] and depth < 16:
            item["manifest"] = _summarise(store, signatures, {}, child, depth + 1)
        ingredients.append(item)
    return {
        "manifest": label,
        "title": manifest.get("title"),
        "claim_generator": _generator(manifest),
        "actions": actions,
        "digital_source_type": next(
            (a["digital_source_type"] for a in actions if a["digital_source_type"]), None
        ),
        "model": params.get("model"),
        "model_sha256": params.get("model_sha256"),
        "operation": params.get("operation"),
        "options": params.get("options"),
        "soft_binding": soft,
        "signer": _signer(manifest, signatures.get(label, {})),
        "ingredients": ingredients,
    }


def read_credentials(
    data_or_path: bytes | str | os.PathLike,
    *,
    trust: list[Path] | None = None,
    trust_local: bool = True,
) -> ContentCredentials:
    """Validate an image's C2PA manifest with c2pa's Reader and summarise it.

    A signer is trusted when its CA is in `trust` (PEM files) or, with `trust_local`, is the
    local CA in the credentials directory. A manifest c2pa cannot parse is a UserError.
    """
    c2pa = require_c2pa()
    if isinstance(data_or_path, (bytes, bytearray, memoryview)):
        data, name = bytes(data_or_path), "the image"
    else:
        name = str(data_or_path)
        data = read_file_bytes(Path(data_or_path))
    mime = image_mime(data, name)
    anchors, sources = _anchors(trust, trust_local)
    found = ContentCredentials(status="none", image=name, format=mime, trust=sources)
    with c2pa.Context.from_dict(c2pa_settings(anchors)) as context:
        try:
            reader = c2pa.Reader.try_create(mime, io.BytesIO(data), None, context)
        except c2pa.C2paError as e:
            raise UserError(
                f"{name} carries a C2PA manifest that c2pa cannot read ({_said(e)}); it is damaged"
            ) from e
        if reader is None:
            return found
        with reader:
            store = json.loads(reader.json())
            crjson = json.loads(reader.crjson())
    signatures = {m.get("label"): m.get("signature", {}) for m in crjson.get("manifests", [])}
    results = store.get("validation_results") or {}
    deltas = {
        d.get("ingredientAssertionURI"): d.get("validationDeltas") or {}
        for d in results.get("ingredientDeltas", [])
    }
    state = store.get("validation_state")
    status = _status(state, results.get("activeManifest") or {})
    summary = _summarise(store, signatures, deltas, store.get("active_manifest", ""))
    found.status = status
    found.validation_state = state
    found.validation = results
    for key, value in summary.items():
        setattr(found, key, value)
    return found


# ---------------------------------------------------------------- text


_MEANING = {
    "none": "no content credentials (no C2PA manifest)",
    "tampered": "the image or its manifest changed after signing",
    "untrusted": "the content is as signed, but the signer is not trusted here",
    "trusted": "valid signature by a trusted CA",
}


def _short(source: str | None) -> str | None:
    return source[len(IPTC) :] if source and source.startswith(IPTC) else source


def _action_line(action: dict) -> str:
    name = (action["action"] or "?").removeprefix("c2pa.")
    params = action["parameters"]
    bits = [_short(action["digital_source_type"])]
    if params.get("operation"):
        bits.append(params["operation"])
    if params.get("options"):
        options = params["options"]
        bits.append(options if isinstance(options, str) else json.dumps(options, sort_keys=True))
    if params.get("model"):
        sha = params.get("model_sha256")
        bits.append(f"model {params['model']}" + (f" (sha256 {sha[:12]}...)" if sha else ""))
    return f"  {name:<11} " + "; ".join(b for b in bits if b)


def _chain_line(item: dict, indent: str) -> list[str]:
    summary = item["manifest"]
    head = f"{indent}ingredient  {item['title']} ({item['relationship']}): {item['status']}"
    if not summary:
        return [head]
    made = [a["action"].removeprefix("c2pa.") for a in summary["actions"] if a["action"]]
    head += f"; {', '.join(made)} by {summary['claim_generator']}"
    details = [_short(summary["digital_source_type"])]
    details += [f"model {summary['model']}" if summary["model"] else None]
    details += [f"watermark {summary['soft_binding']['alg']}" if summary["soft_binding"] else None]
    if any(details):
        head += f" ({', '.join(d for d in details if d)})"
    lines = [head]
    for sub in summary["ingredients"]:
        lines += _chain_line(sub, indent + "  ")
    return lines


def describe(found: ContentCredentials) -> list[str]:
    """A few readable lines: the status and what the manifest says."""
    meaning = _MEANING[found.status]
    if found.status == "untrusted":
        other = {f.get("code") or "" for f in found.failures} - {f"{CREDENTIAL}untrusted"}
        meaning = (
            f"{meaning}: its certificate fails ({', '.join(sorted(other))})"
            if other
            else "valid signature, but the signer's CA is not trusted here (--trust CA.pem)"
        )
    lines = [f"{found.image}: {found.status}: {meaning}"]
    if found.status == "none":
        return lines
    signer = found.signer or {}
    lines.append(f"  signed by   {signer.get('subject')}, issued by {signer.get('issuer')}")
    lines.append(f"  made with   {found.claim_generator}")
    lines += [_action_line(a) for a in found.actions if a["action"] != "c2pa.opened"]
    if found.soft_binding:
        sb = found.soft_binding
        rest = ", ".join(f"{k} {v}" for k, v in sb.items() if k != "alg")
        lines.append(f"  watermark   {sb.get('alg')}" + (f": {rest}" if rest else ""))
    for item in found.ingredients:
        lines += _chain_line(item, "  ")
    for failure in found.failures:
        lines.append(f"  failure     {failure.get('code')}: {failure.get('explanation')}")
    if found.status == "trusted" or found.trust:
        lines.append(f"  trusting    {', '.join(found.trust) or 'nothing'}")
    return lines
