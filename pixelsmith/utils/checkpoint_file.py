"""The checkpoint file: one safetensors file holding tensors and a JSON manifest; atomic; never
pickled. What a training checkpoint holds beside the weights is `pixelsmith.train.checkpoint`'s.
"""

from __future__ import annotations

import errno
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from pixelsmith.errors import UserError
from pixelsmith.utils import encryption
from pixelsmith.utils.files import atomic_write_bytes

FORMAT = "pixelsmith-checkpoint/1"
PATTERN = re.compile(r"^ckpt-(\d+)\.safetensors$")


def payload_hash(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over tensor names, dtypes, shapes and bytes, in sorted key order."""
    h = hashlib.sha256()
    for key in sorted(tensors):
        t = tensors[key].detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_checkpoint(
    path: str | Path,
    tensors: dict[str, torch.Tensor],
    manifest: dict[str, Any],
    key: encryption.EncryptionKey | None = None,
) -> Path:
    """Write tensors + manifest to `path` atomically (encrypted with `key` when given); on
    failure the old file stays intact."""
    path = Path(path)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    manifest = {**manifest, "format": FORMAT, "payload_sha256": payload_hash(tensors)}
    data = st_save(tensors, metadata={"pixelsmith": json.dumps(manifest)})
    if key is not None:
        data = encryption.encrypt(data, key)
    try:
        atomic_write_bytes(path, data)
    except OSError as e:
        why = "the disk is full" if e.errno == errno.ENOSPC else e.strerror or str(e)
        raise UserError(
            f"could not write checkpoint {path} ({why}); the previous checkpoint is intact: "
            "free space, then continue with --resume"
        ) from None
    return path


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest of a checkpoint file, without loading its tensors."""
    return load_checkpoint(path, tensors=False)[1]


def load_checkpoint(
    path: str | Path, tensors: bool = True
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read and verify a checkpoint (decrypting it with the active key when it is encrypted); a
    truncated, corrupt, changed or foreign file is a UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"checkpoint {path} does not exist; pass a run folder or a .safetensors file"
        )
    fix = "it is truncated or corrupt; use an earlier checkpoint of the run"
    with open(path, "rb") as f:  # the manifest lives in the header: read the tensors only if asked
        head = f.read(8)
        if head == encryption.MAGIC:
            plain = encryption.decrypt(head + f.read(), f"checkpoint {path}")
            head, size = plain[:8], len(plain)
        else:
            plain, size = None, path.stat().st_size
        header_len = int.from_bytes(head, "little")
        if len(head) < 8 or header_len > size:
            raise UserError(f"{path} is not a readable pixelsmith checkpoint ({fix})")
        if plain is not None:
            header, rest = plain[8 : 8 + header_len], plain[8 + header_len :]
        else:
            header = f.read(header_len)
            rest = f.read() if tensors else b""
    try:
        meta = json.loads(json.loads(header)["__metadata__"]["pixelsmith"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise UserError(f"{path} is not a readable pixelsmith checkpoint ({fix})") from None
    if meta.get("format") != FORMAT:
        raise UserError(f"{path} is not a pixelsmith checkpoint (format {meta.get('format')!r})")
    if not tensors:
        return {}, meta
    try:
        loaded = st_load(head + header + rest)
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise UserError(f"checkpoint {path} cannot be read ({e}); {fix}") from None
    if payload_hash(loaded) != meta.get("payload_sha256"):
        raise UserError(f"checkpoint {path} fails its checksum; {fix}")
    return loaded, meta


def load_networks(networks: dict[str, torch.nn.Module], tensors: dict[str, torch.Tensor]) -> None:
    """Load each network's state from the `net/NAME/...` tensors of a checkpoint."""
    for name, net in networks.items():
        prefix = f"net/{name}/"
        net.load_state_dict(
            {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        )


def list_checkpoints(folder: str | Path) -> list[Path]:
    """Checkpoint files in a folder, oldest step first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := PATTERN.match(p.name))]
    return [p for _, p in sorted(found)]


def resolve_checkpoint(target: str | Path) -> Path:
    """A checkpoint file from a file path or a run folder (its newest checkpoint)."""
    target = Path(target)
    if target.is_dir():
        found = list_checkpoints(target / "checkpoints") or list_checkpoints(target)
        if not found:
            raise UserError(
                f"run folder {target} holds no checkpoints (looked in {target}/checkpoints)"
            )
        return found[-1]
    if not target.exists():
        raise UserError(f"{target} does not exist; pass a run folder or a .safetensors checkpoint")
    return target


def prune(folder: str | Path, keep: int) -> None:
    """Delete all but the newest `keep` checkpoints in a folder."""
    for old in list_checkpoints(folder)[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)
