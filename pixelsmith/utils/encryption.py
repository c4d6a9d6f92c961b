"""Encryption at rest: AES-256-GCM over whole files, with keys kept in their own small JSON files.

An encrypted file is `MAGIC`, the key's public id (16 hex digits), a 12-byte random nonce, then
the ciphertext with its 16-byte tag; the magic and the key id are authenticated too, so any
changed byte anywhere is refused. Nothing is ever decrypted to disk: `decrypt` returns bytes.

The key that reads (and, for training runs, writes) encrypted files is the one the environment
variable `PIXELSMITH_ENCRYPTION_KEY` names (a key file's path); `--encrypt KEYFILE` sets it for
one command (train, sample, eval, export, serve, data show). What reads encrypted files: the
checkpoint loader, a run's stats, and pixelsmith's one image reader, so a data set made by
`pixelsmith keys encrypt` trains, evaluates and edits like a plain folder. The key file is never
written beside the data it protects: keep it apart.
AES-GCM comes from `cryptography` (the `privacy` extra), imported only when a file is encrypted.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from pixelsmith.errors import UserError
from pixelsmith.utils.files import atomic_write_bytes, write_private

MAGIC = b"PXSENC1\n"
KIND = "pixelsmith-encryption-key"
ENV = "PIXELSMITH_ENCRYPTION_KEY"
_ID_LEN, _NONCE_LEN = 16, 12


@dataclass(frozen=True)
class EncryptionKey:
    """A 256-bit AES key and its public id."""

    secret: bytes

    @property
    def key_id(self) -> str:
        """A public name for the key (16 hex digits of a hash of the secret)."""
        return hashlib.sha256(b"pixelsmith-encryption-key-id" + self.secret).hexdigest()[:16]


def new_encryption_key() -> EncryptionKey:
    """A fresh random key."""
    return EncryptionKey(secrets.token_bytes(32))


def save_encryption_key(key: EncryptionKey, path: str | Path, force: bool = False) -> Path:
    """Write a key file readable by its owner only; an existing file needs `force`."""
    text = json.dumps({"kind": KIND, "format": 1, "key_id": key.key_id, "secret": key.secret.hex()})
    return write_private(path, text + "\n", force)


def load_encryption_key(path: str | Path) -> EncryptionKey:
    """Read a key file; a file of another kind or a damaged one is a one-line UserError."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"encryption key {path} does not exist") from None
    except (OSError, ValueError, UnicodeDecodeError):
        raise UserError(f"{path} is not a pixelsmith encryption key (not readable JSON)") from None
    if not isinstance(data, dict) or data.get("kind") != KIND:
        kind = data.get("kind") if isinstance(data, dict) else None
        raise UserError(
            f"{path} is not an encryption key (its kind is {kind!r}); make one with "
            "`pixelsmith keys new encryption -o KEYFILE`"
        )
    try:
        key = EncryptionKey(bytes.fromhex(data["secret"]))
    except (KeyError, TypeError, ValueError):
        raise UserError(f"encryption key {path} is damaged (its secret is unreadable)") from None
    if len(key.secret) != 32 or key.key_id != data.get("key_id"):
        raise UserError(f"encryption key {path} is damaged (its secret does not match its id)")
    return key


def active_key() -> EncryptionKey | None:
    """The key `PIXELSMITH_ENCRYPTION_KEY` names, or None when it is unset."""
    where = os.environ.get(ENV)
    return load_encryption_key(where) if where else None


def _aesgcm(key: EncryptionKey):
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError:
        raise UserError(
            "encrypted files need the cryptography package: pip install 'pixelsmith[privacy]'"
        ) from None
    return AESGCM(key.secret)


def is_encrypted(data: bytes) -> bool:
    """Whether bytes are an encrypted pixelsmith file."""
    return data[: len(MAGIC)] == MAGIC


def encrypt(data: bytes, key: EncryptionKey) -> bytes:
    """The encrypted file of `data` under `key` (a fresh nonce each time)."""
    head = MAGIC + key.key_id.encode()
    nonce = secrets.token_bytes(_NONCE_LEN)
    return head + nonce + _aesgcm(key).encrypt(nonce, data, head)


def decrypt(data: bytes, what: str | Path, key: EncryptionKey | None = None) -> bytes:
    """The plain bytes of an encrypted file, with `key` or the active one; `what` names the file
    in the one-line refusal of a missing or wrong key and of any changed byte."""
    head_len = len(MAGIC) + _ID_LEN
    if not is_encrypted(data) or len(data) < head_len + _NONCE_LEN + 16:
        raise UserError(f"{what} is not an encrypted pixelsmith file, or it is truncated")
    file_id = data[len(MAGIC) : head_len].decode("ascii", "replace")
    key = key if key is not None else active_key()
    if key is None:
        raise UserError(
            f"{what} is encrypted (key {file_id}); name its key file in {ENV} "
            "(or pass --encrypt KEYFILE where the command takes it)"
        )
    if key.key_id != file_id:
        raise UserError(f"{what} is encrypted with key {file_id}, not with key {key.key_id}")
    aes = _aesgcm(key)
    from cryptography.exceptions import InvalidTag

    nonce = data[head_len : head_len + _NONCE_LEN]
    try:
        return aes.decrypt(nonce, data[head_len + _NONCE_LEN :], data[:head_len])
    except InvalidTag:
        raise UserError(
            f"{what} fails authentication: it was changed or damaged since it was written"
        ) from None


def write_file(path: str | Path, data: bytes, key: EncryptionKey | None) -> Path:
    """Write `data` atomically, encrypted with `key` when one is given."""
    atomic_write_bytes(path, encrypt(data, key) if key is not None else data)
    return Path(path)


def read_file(path: str | Path) -> bytes:
    """A file's bytes, decrypted in memory with the active key when it is encrypted."""
    data = Path(path).read_bytes()
    return decrypt(data, path) if is_encrypted(data) else data


def _files(path: Path) -> list[Path]:
    if not path.exists():
        raise UserError(f"{path} does not exist")
    return [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())


def _encrypted_on_disk(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def any_encrypted(paths: list[Path]) -> bool:
    """Whether any of the files is encrypted (only their first bytes are read)."""
    return any(_encrypted_on_disk(Path(p)) for p in paths)


def copy_tree(src: str | Path, dst: str | Path, key: EncryptionKey, encrypting: bool) -> list[Path]:
    """Encrypt (or decrypt) the file `src`, or every file under the folder `src`, into `dst`
    under the same relative names, one file in memory at a time. Files already in the wanted
    state are copied as they are; when decrypting, a file that fails authentication stops the
    work before anything is written."""
    src, dst = Path(src), Path(dst)
    files = _files(src)
    if src.is_dir() and dst.resolve().is_relative_to(src.resolve()):
        raise UserError(f"{dst} lies inside {src}; write the copy somewhere else")
    if not encrypting:  # check every file first: a damaged one stops the work before any write
        for f in files:
            data = f.read_bytes()
            if is_encrypted(data):
                decrypt(data, f, key)
    done = []
    for f in files:
        data = f.read_bytes()
        if encrypting and not is_encrypted(data):
            data = encrypt(data, key)
        elif not encrypting and is_encrypted(data):
            data = decrypt(data, f, key)
        target = dst if src.is_file() else dst / f.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        done.append(write_file(target, data, None))
    return done


def rotate(path: str | Path, old: EncryptionKey, new: EncryptionKey) -> list[Path]:
    """Re-encrypt every file under `path` (or the file itself) written with `old` under `new`,
    each replaced atomically after it decrypted; files not encrypted are left alone. Returns the
    files rotated; a file encrypted with any other key stops the work before any is written."""
    plain = {
        f: decrypt(f.read_bytes(), f, old) for f in _files(Path(path)) if _encrypted_on_disk(f)
    }
    for f, data in plain.items():
        write_file(f, data, new)
    return list(plain)
