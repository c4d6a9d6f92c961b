"""Watermark keys: a secret and the layout of the bits it marks, kept in a small JSON file."""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from pixelsmith.errors import UserError
from pixelsmith.utils.files import write_private

KIND = "pixelsmith-watermark-key"
FORMAT = 1
METHODS = ("ss1",)
KEY_BITS = 64
MAX_MESSAGE_BITS = 64


@dataclass(frozen=True)
class WatermarkKey:
    """The secret that marks and detects, and how many bits it spends on the key and message."""

    secret: bytes
    key_bits: int = KEY_BITS
    message_bits: int = 32
    method: str = "ss1"

    @property
    def key_id(self) -> str:
        """A public name for the key (16 hex digits of a hash of the secret)."""
        return hashlib.sha256(b"pixelsmith-key-id" + self.secret).hexdigest()[:16]

    def stream(self, label: str, nbytes: int) -> bytes:
        """Secret-derived bytes for one purpose (SHA-256 in counter mode)."""
        out = b""
        counter = 0
        while len(out) < nbytes:
            block = self.secret + label.encode() + counter.to_bytes(8, "big")
            out += hashlib.sha256(block).digest()
            counter += 1
        return out[:nbytes]

    def to_dict(self) -> dict[str, object]:
        """The key file's fields."""
        return {
            "kind": KIND,
            "format": FORMAT,
            "method": self.method,
            "key_id": self.key_id,
            "secret": self.secret.hex(),
            "key_bits": self.key_bits,
            "message_bits": self.message_bits,
        }


def new_key(message_bits: int = 32) -> WatermarkKey:
    """A fresh random key."""
    if not 0 <= message_bits <= MAX_MESSAGE_BITS or message_bits % 8:
        raise UserError(
            f"message bits must be a multiple of 8 from 0 to {MAX_MESSAGE_BITS}, got {message_bits}"
        )
    return WatermarkKey(secrets.token_bytes(32), message_bits=message_bits)


def save_key(key: WatermarkKey, path: str | Path, force: bool = False) -> Path:
    """Write a key file readable by its owner only; an existing file is kept unless `force`."""
    return write_private(path, json.dumps(key.to_dict(), indent=1) + "\n", force)


def load_key(path: str | Path) -> WatermarkKey:
    """Read a key file, refusing anything that is not a pixelsmith watermark key."""
    path = Path(path)
    try:
        d = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(
            f"no key file {path}; make one with `pixelsmith keys new watermark`"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise UserError(f"{path} is not a watermark key (not a JSON key file)") from None
    if not isinstance(d, dict) or d.get("kind") != KIND:
        kind = d.get("kind") if isinstance(d, dict) else None
        what = f"a {kind!r} file" if kind else "not a pixelsmith key file"
        raise UserError(f"{path} is {what}, not a watermark key")
    try:
        secret = bytes.fromhex(d["secret"])
        key = WatermarkKey(secret, int(d["key_bits"]), int(d["message_bits"]), str(d["method"]))
    except (KeyError, TypeError, ValueError):
        raise UserError(
            f"{path} is a damaged watermark key (a field is missing or wrong)"
        ) from None
    if d.get("format") != FORMAT or key.method not in METHODS or len(secret) < 16:
        raise UserError(f"{path} is a watermark key this version cannot use (format or method)")
    if key.key_bits != KEY_BITS or not 0 <= key.message_bits <= MAX_MESSAGE_BITS:
        raise UserError(f"{path} is a damaged watermark key (its bit counts are out of range)")
    if d.get("key_id") not in (None, key.key_id):
        raise UserError(f"{path} is a damaged watermark key (its key_id does not match its secret)")
    return key


def parse_message(text: str | None, key: WatermarkKey) -> bytes:
    """A message as bytes: `0x...` is hexadecimal, anything else UTF-8 text; it must fit the key."""
    if not text:
        return b""
    if text.lower().startswith("0x"):
        try:
            data = bytes.fromhex(text[2:])
        except ValueError:
            raise UserError(f"message {text!r} starts with 0x but is not hexadecimal") from None
    else:
        data = text.encode()
    if len(data) * 8 > key.message_bits:
        raise UserError(
            f"message {text!r} needs {len(data) * 8} bits; this key carries "
            f"{key.message_bits} ({key.message_bits // 8} bytes): shorten it, or make a key with "
            "more message bits (`pixelsmith keys new watermark --message-bits 64`)"
        )
    return data
