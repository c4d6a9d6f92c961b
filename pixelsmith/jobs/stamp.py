"""Marks and credentials at the source: what `sample`, `edit` and the service put in the images
they make.

A `Stamp` holds a watermark key and a C2PA signer, either or both. `mark` puts the key's mark in
an image's pixels with a message: the one given, or else a fresh random image id per image (4
bytes, fewer when the key carries fewer), so each manifest names the mark of its own pixels.
Images under `MIN_EMBED_SIDE` pixels a side cannot hold a mark, and a mark the detector does not
read back (with its message) from the marked pixels is not kept; such images pass unmarked, with
a note, so a manifest's soft binding always names a mark its image holds.
`sign` embeds a signed manifest in the encoded bytes, with the mark as its soft binding; it comes
last, because the manifest's hash covers the file's final bytes.

`open_stamp` reads the key, the message and the signer and refuses a bad one before any work;
`service_stamp` does the same for the service, making its own key and local credentials on the
first start. `sample_files` is `pixelsmith sample` with a stamp; `pixelsmith.jobs.files` stamps
edits, and `pixelsmith.serve` stamps what it answers.
"""

from __future__ import annotations

import importlib.util
import io
import secrets
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor

from pixelsmith.edit.photo import Photo, encode_photo, read_photo, read_photo_bytes
from pixelsmith.errors import UserError
from pixelsmith.models.base import Family
from pixelsmith.provenance.credentials import (
    Claim,
    CredentialSigner,
    Parent,
    image_mime,
    init_credentials,
    load_signer,
    read_credentials,
    sign_bytes,
)
from pixelsmith.provenance.credentials_signer import (
    EXTRA,
    SIGNER_CERT,
    SIGNER_KEY,
    default_directory,
)
from pixelsmith.provenance.keys import WatermarkKey, load_key, new_key, parse_message, save_key
from pixelsmith.provenance.watermark import MIN_DETECT_SIDE, MIN_EMBED_SIDE, detect, embed
from pixelsmith.utils.files import atomic_write_bytes

IMAGE_ID_BYTES = 4
# A fresh image id that does not read back from an image's pixels (about 1 in 100 on a small
# grid: bench/watermark_ids.py) is swapped for another: it was random anyway. A given message
# is tried once.
ID_TRIES = 4
SERVICE_KEY = "service-watermark.json"  # in the credentials directory
SIGNABLE = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}

UNREADABLE = (
    "not watermarkable: the mark did not read back from its pixels (too flat, too grey or too "
    "saturated an image for it)"
)

Log = Callable[[str], None]


class Marked(NamedTuple):
    """An image after `Stamp.mark`: its pixels, the soft binding of its mark (None when
    unmarked) and why it is unmarked (None when marked, or when no key was given)."""

    image: Tensor
    binding: dict[str, str] | None
    note: str | None


def too_small(height: int, width: int) -> str | None:
    """Why an image of this size cannot be marked, or None when it can."""
    if min(height, width) >= MIN_EMBED_SIDE:
        return None
    return f"too small to watermark ({width}x{height}; needs {MIN_EMBED_SIDE} px a side)"


def reads_back(marked: Tensor, key: WatermarkKey, message: bytes) -> bool:
    """Whether the detector finds the mark, with its message, in `marked` as 8 bits keep it: a
    manifest names only a mark its image holds."""
    found = detect((marked * 255).round() / 255, key)
    return found.detected and found.message_hex == message.hex().ljust(key.message_bits // 4, "0")


def soft_binding(key: WatermarkKey, message: bytes) -> dict[str, str]:
    """What a manifest records of a mark: the method, the key's public id and the message."""
    return {"alg": f"pixelsmith.watermark.{key.method}", "key_id": key.key_id,
            "message": message.hex()}  # fmt: skip


@dataclass(frozen=True)
class Stamp:
    """What the images of a run carry: a watermark `key` (with `message`, or a fresh image id
    per image when None) and a C2PA `signer`; either may be None."""

    key: WatermarkKey | None = None
    signer: CredentialSigner | None = None
    message: bytes | None = None
    key_path: Path | None = None  # where the key was read from (for what the service says)

    @property
    def active(self) -> bool:
        """Whether it marks or signs anything."""
        return self.key is not None or self.signer is not None

    def image_message(self) -> bytes:
        """The message of the next image: the one given, else a fresh random image id."""
        if self.message is not None:
            return self.message
        assert self.key is not None
        return secrets.token_bytes(min(IMAGE_ID_BYTES, self.key.message_bits // 8))

    def mark(self, x: Tensor) -> Marked:
        """`x` (C, H, W in [0, 1]) with the key's mark, when there is a key, `x` is large
        enough and the mark reads back; otherwise `x` itself, with a note saying which failed."""
        if self.key is None:
            return Marked(x, None, None)
        note = too_small(int(x.shape[-2]), int(x.shape[-1]))
        if note is not None:
            return Marked(x, None, note)
        for _ in range(ID_TRIES if self.message is None else 1):
            message = self.image_message()
            out = embed(x, self.key, message)
            if reads_back(out, self.key, message):
                return Marked(out, soft_binding(self.key, message), None)
        return Marked(x, None, UNREADABLE)

    def warm(self) -> None:
        """Mark a blank image once, so the first real one does not pay for the key's patterns."""
        if self.key is not None:
            self.mark(torch.full((3, MIN_EMBED_SIDE, MIN_EMBED_SIDE), 0.5))

    def sign(
        self,
        data: bytes,
        mime: str | None,
        action: str,
        *,
        model: str | None = None,
        model_sha256: str | None = None,
        operation: str | None = None,
        options: dict[str, Any] | None = None,
        binding: dict[str, str] | None = None,
        parent: Parent | None = None,
        title: str | None = None,
    ) -> bytes:
        """The encoded image with a signed manifest ("created", or "edited" from `parent`);
        the bytes unchanged when there is no signer."""
        if self.signer is None:
            return data
        claim = Claim(
            action,
            model=model,
            model_sha256=model_sha256,
            operation=operation,
            options=plain_options(options or {}),
            soft_binding=binding,
            parent=parent,
            title=title,
        )
        return sign_bytes(data, mime, claim, self.signer)

    def make(
        self,
        x: Tensor,
        encode: Callable[[Tensor], bytes],
        mime: str | None,
        action: str,
        **claim: Any,
    ) -> tuple[bytes, Marked]:
        """An image's file bytes: `x` marked, encoded by `encode`, then signed with `claim`
        (`sign`'s fields) and the mark as its soft binding; and the `Marked` image."""
        marked = self.mark(x)
        data = encode(marked.image)
        return self.sign(data, mime, action, binding=marked.binding, **claim), marked

    def small_note(self, note: str) -> str:
        """What an answer says of its images too small to mark."""
        if self.signer is None:
            return f"images {note}: returned without a mark"
        return f"images {note}: their content credentials have no soft binding"

    def summary(self) -> str:
        """One line on what every image it stamps carries."""
        marks, signs = "no watermark", "no content credentials"
        if self.key is not None:
            marks = (f"watermark key {self.key.key_id} ({self.key.method}, "
                     f"{self.key.message_bits} message bits)")  # fmt: skip
        if self.signer is not None:
            signs = f"content credentials signed by {self.signer.subject}"
        return f"every image returned carries: {marks}; {signs}"

    def describe(self) -> dict[str, Any]:
        """What the service shows of it: the key's public id, method and bits (never its
        secret) and the signer's subject, or None for what is off."""
        mark = None
        if self.key is not None:
            mark = {"key_id": self.key.key_id, "method": self.key.method,
                    "key_bits": self.key.key_bits, "message_bits": self.key.message_bits,
                    "min_side": MIN_EMBED_SIDE}  # fmt: skip
        signer = None
        if self.signer is not None:
            signer = {"subject": self.signer.subject, "issuer": self.signer.issuer,
                      "alg": self.signer.alg, "not_after": self.signer.not_after}  # fmt: skip
        return {"watermark": mark, "credentials": signer}

    def inspect(self, data: bytes, name: str, cap: int) -> dict[str, Any]:
        """What an image file says of its origin: the stamp key's mark read from its pixels
        (None without a key) and its content credentials validated by c2pa (None when the
        provenance extra is missing)."""
        photo = read_photo_bytes(data, name, cap)
        mark: dict[str, Any] | None = None
        if self.key is not None:
            h, w = photo.size
            if min(h, w) < MIN_DETECT_SIDE:
                mark = {"detected": False, "note": f"{w}x{h} is too small to hold a readable mark"}
            else:
                mark = {"key_id": self.key.key_id, **detect(photo.colour, self.key).to_dict()}
        found = None
        if importlib.util.find_spec("c2pa") is not None:
            try:
                found = read_credentials(data).to_dict()
            except UserError as e:  # a format C2PA cannot carry, or a damaged manifest
                found = {"status": "unreadable", "note": str(e)}
        return {"watermark": mark, "credentials": found}


# ---------------------------------------------------------------- opening a stamp


Credentials = bool | str | Path | CredentialSigner | tuple[Any, Any] | None


def _signer(credentials: Credentials) -> CredentialSigner | None:
    """A signer from True (the local credentials), a directory, (cert, key) or a signer."""
    if credentials is None or credentials is False:
        return None
    if isinstance(credentials, CredentialSigner):
        return credentials
    if credentials is True:
        return load_signer()
    if isinstance(credentials, tuple):
        cert, key = credentials
        return load_signer(cert=Path(cert) if cert else None, key=Path(key) if key else None)
    return load_signer(Path(credentials))


def signer_option(
    credentials: bool | str | Path | None, cert: str | Path | None, key: str | Path | None
) -> Credentials:
    """What `--credentials [DIR]`, `--cert` and `--key` ask for, as `open_stamp` takes it."""
    if cert is None and key is None:
        return credentials
    if credentials is False:
        raise UserError("--no-credentials turns signing off; leave out --cert and --key")
    if credentials not in (None, True):
        raise UserError("give either --credentials DIR or --cert and --key, not both")
    return (cert, key)


def open_stamp(
    watermark: WatermarkKey | str | Path | None = None,
    message: str | bytes | None = None,
    credentials: Credentials = None,
) -> Stamp:
    """The stamp the options ask for, every refusal made before any work: a key file that is
    not a watermark key, a message too long for its bits, a missing or refused signer.

    `watermark`: a key or its file; `message`: text or 0xHEX (bytes as they are), the same in
    every image (default: a random image id per image); `credentials`: True for the local
    signer, a credentials directory, a (certificate chain, key) pair of files, or a signer.
    """
    key, key_path = None, None
    if isinstance(watermark, WatermarkKey):
        key = watermark
    elif watermark is not None:
        key_path = Path(watermark)
        key = load_key(key_path)
    data = None
    if message is not None:
        if key is None:
            raise UserError("--message is what the watermark carries; give --watermark KEYFILE")
        if isinstance(message, bytes):
            if len(message) * 8 > key.message_bits:
                raise UserError(f"the message needs {len(message) * 8} bits; the key carries "
                                f"{key.message_bits}")  # fmt: skip
            data = message
        else:
            data = parse_message(message, key)
    return Stamp(key, _signer(credentials), data, key_path)


def _service_key(path: Path, log: Log) -> WatermarkKey:
    """The service's own key at `path`, made (mode 0600) on the first start."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            save_key(new_key(), path)
        except UserError:  # another start made it first
            return load_key(path)
        key = load_key(path)
        log(f"made the service's watermark key {key.key_id} in {path} (keep it: it detects "
            "the service's images)")  # fmt: skip
        return key
    return load_key(path)


def service_stamp(
    watermark: bool | str | Path = True,
    credentials: bool | str | Path = True,
    cert: str | Path | None = None,
    key: str | Path | None = None,
    log: Log = print,
) -> Stamp:
    """The service's stamp: by default its own watermark key (`SERVICE_KEY` in the credentials
    directory, made on the first start) and the local signer (made with `init_credentials` on
    the first start); a key file, a credentials directory or `cert` + `key` of your own; False
    turns either off."""
    own_key, own_signer = watermark is True, credentials is True and cert is None and key is None
    signer = signer_option(credentials, cert, key)
    given = open_stamp(  # what was named is checked before anything is made
        None if isinstance(watermark, bool) else Path(watermark),
        None,
        None if own_signer else signer,
    )
    mark_key, key_file = given.key, given.key_path
    if own_key:
        key_file = default_directory() / SERVICE_KEY
        mark_key = _service_key(key_file, log)
    if not own_signer:
        return Stamp(mark_key, given.signer, None, key_file)
    missing = [m for m in ("c2pa", "cryptography") if importlib.util.find_spec(m) is None]
    if missing:  # asked for by default, not by name: the service still starts, and says so
        log(f"content credentials are off: {' and '.join(missing)} not installed "
            f"({EXTRA}); pass --no-credentials to start without them quietly")  # fmt: skip
        return Stamp(mark_key, None, None, key_file)
    where = default_directory()
    if not (where / SIGNER_CERT).exists() and not (where / SIGNER_KEY).exists():
        init_credentials(where, name="pixelsmith service")
        log(f"made a local signing CA and certificate in {where} for the service's content "
            f"credentials; its CA ({where / 'ca.pem'}) is trusted only where it is "
            "installed")  # fmt: skip
    return Stamp(mark_key, load_signer(where), None, key_file)


# ---------------------------------------------------------------- what a manifest says of models


_FILE_HASHES: dict[tuple[str, int, int], str] = {}


def _file_sha256(path: Path) -> str:
    from pixelsmith.utils.files import sha256_file

    st = path.stat()
    cache = (str(path), st.st_size, st.st_mtime_ns)
    if cache not in _FILE_HASHES:
        _FILE_HASHES[cache] = sha256_file(path)
    return _FILE_HASHES[cache]


def model_identity(model: Family, name: str | None = None) -> tuple[str, str]:
    """The name and sha256 a manifest records for a model: a zoo model's `zoo:NAME` and its
    file's hash from the index; a checkpoint's `name` (default: its file name) and its file's
    sha256; a model made in memory, `name` (default: its family) and "tensors:" + the hash of
    its weights (`payload_hash`)."""
    from pixelsmith import zoo

    path = Path(model.checkpoint) if model.checkpoint is not None else None
    if path is not None and path.is_file():
        path = path.resolve()
        for zoo_name, e in zoo.entries().items():
            if Path(e.file).resolve() == path:
                return f"zoo:{zoo_name}", e.sha256
        return name or path.name, _file_sha256(path)
    from pixelsmith.utils.checkpoint_file import payload_hash

    tensors = {f"{n}/{k}": v for n, net in model.networks.items()
               for k, v in net.state_dict().items()}  # fmt: skip
    return name or model.name, "tensors:" + payload_hash(tensors)


def reference_identity(target: str) -> tuple[str, str]:
    """The name and sha256 of a model named by a run, checkpoint or zoo:NAME (not loaded)."""
    from pixelsmith import zoo

    name = zoo.zoo_name(target)
    if name is not None:
        return f"zoo:{name}", zoo.entry(name).sha256
    return target, _file_sha256(zoo.resolve(target).resolve())


def edit_model(
    options: dict[str, Any], report: dict[str, Any], model: Family | None, name: str | None = None
) -> tuple[str | None, str | None]:
    """The model an edit used, as (name, sha256): its translator (`model`, called `name`), a
    model option holding a loaded model, or a model the operation reported (`report["model"]`:
    a Family or a run, checkpoint or zoo:NAME); (None, None) when it used none that it says."""
    if model is not None:
        return model_identity(model, name)
    for value in options.values():
        if isinstance(value, Family):
            return model_identity(value)
    said = report.get("model")
    if isinstance(said, Family):
        return model_identity(said)
    if isinstance(said, str | Path):
        return reference_identity(str(said))
    return None, None


def plain_options(options: dict[str, Any]) -> dict[str, Any]:
    """Options as a manifest records them: loaded models by their names, paths as text."""

    def plain(value: Any) -> Any:
        if isinstance(value, Family):
            return model_identity(value)[0]
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, Path):
            return str(value)
        return value

    return {k: plain(v) for k, v in options.items()}


# ---------------------------------------------------------------- parents and files


def parent_of(data: bytes, title: str, photo: Photo | None = None) -> tuple[Parent, str | None]:
    """The input of an edit as a manifest's parent: its own bytes (with any manifest they carry)
    when c2pa reads its format (PNG, JPEG, WebP); otherwise `photo` (its pixels as read)
    encoded as PNG, with a note that says so. `title` is its file name (a path's last part)."""
    title = title.replace("\\", "/").rsplit("/", 1)[-1][:200] or "input"
    try:
        return Parent(data, image_mime(data, title), title), None
    except UserError:
        if photo is None:
            raise
    from PIL import Image

    try:
        fmt = Image.open(io.BytesIO(data)).format or "unknown"
    except Exception:  # Pillow raises many kinds; the format only names the note
        fmt = "unknown"
    png = encode_photo(photo, Path("parent.png"))
    note = (f"the input {title} is {fmt}, which content credentials cannot name as a parent; "
            "its pixels are recorded as a PNG instead")  # fmt: skip
    return Parent(png, "image/png", f"{title} (as PNG)"), note


def signable(path: Path) -> str:
    """The MIME type of an output a manifest can be signed into, or a UserError naming it."""
    mime = SIGNABLE.get(path.suffix.lower())
    if mime is None:
        raise UserError(
            f"{path.name}: content credentials can be signed into PNG, JPEG and WebP files "
            f"only; name the output .png, .jpg or .webp, or leave out --credentials"
        )
    return mime


def stamp_file(
    photo: Photo, target: Path, stamp: Stamp, action: str, **claim: Any
) -> dict[str, Any]:
    """Mark `photo`, encode it for `target`, sign it and write it atomically; what was done
    (key_id and message_hex when marked, a note when too small, the action when signed)."""
    mime = signable(target) if stamp.signer is not None else None
    data, marked = stamp.make(
        photo.colour,
        lambda x: encode_photo(photo.with_pixels(x), target),
        mime,
        action,
        title=target.name,
        **claim,
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(target, data)
    said: dict[str, Any] = {}
    if marked.binding is not None:
        said.update(key_id=marked.binding["key_id"], message_hex=marked.binding["message"])
    if marked.note is not None:
        said["watermark"] = marked.note
    if stamp.signer is not None:
        said["signed"] = action
    return said


def unmarked(reports: list[dict[str, Any]]) -> str | None:
    """One line on the outputs too small to mark (None when there are none)."""
    small = [r for r in reports if "watermark" in r]
    if not small:
        return None
    more = f" (and {len(small) - 1} more)" if len(small) > 1 else ""
    return f"{small[0]['out']} is {small[0]['watermark']}{more}: written without a mark"


# ---------------------------------------------------------------- sampling


def sample_files(
    model: Family,
    n: int,
    seed: int,
    out: str | Path,
    stamp: Stamp,
    *,
    options: Any = None,
    name: str | None = None,
    style_mix: tuple[int, int] | None = None,
) -> tuple[list[Path], list[dict[str, Any]]]:
    """`sample_to` (or `style_mix_to` with `style_mix` = (rows, cols)) with each image written
    marked and signed as created by the model (`name`, its sha256 and the sampling options);
    the paths, and what was done to each file.

    The images are drawn into a private folder beside OUT, then each is marked, signed and
    written to its place; nothing unmarked is left at OUT."""
    from pixelsmith.generate import sample_to, style_mix_to

    out = Path(out)
    model_name, sha = model_identity(model, name)
    settings = dict(model.sample_settings(options))
    if style_mix is not None:
        settings.update(style_mix=list(style_mix), seed=seed)
    else:
        settings.update(n=n, seed=seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.sample-", dir=out.parent))
    draft = work / out.name
    try:
        try:
            if style_mix is not None:
                drawn = [style_mix_to(model, *style_mix, seed, draft, options=options)]
            else:
                drawn = sample_to(model, n, seed, draft, options=options)
        except UserError as e:  # its refusals name the draft: name OUT instead
            raise UserError(str(e).replace(str(draft), str(out))) from None
        paths, reports = [], []
        for path in drawn:
            target = out / path.relative_to(draft) if path != draft else out
            said = stamp_file(read_photo(path), target, stamp, "created", model=model_name,
                              model_sha256=sha, options=settings)  # fmt: skip
            paths.append(target)
            reports.append({"out": str(target), **said})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return paths, reports
