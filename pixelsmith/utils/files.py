"""Files: the sha256 weights and zoo models are checked by, package folders, key files."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def sha256_file(path: str | os.PathLike) -> str:
    """The sha256 hex digest of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def package_folder(name: str) -> Path | None:
    """Where an installed package's folder is, found without importing it (None if absent);
    for wheels that pixelsmith only takes data files from."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def write_private(path: str | os.PathLike, text: str, force: bool = False) -> Path:
    """Write a secret (a key file) readable by its owner only; an existing file is kept unless
    `force`."""
    from pixelsmith.errors import UserError

    path = Path(path)
    if path.exists() and not force:
        raise UserError(f"{path} exists; give another name or --force to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write bytes to a temporary file, fsync it, then rename it over `path`."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
