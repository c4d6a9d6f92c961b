"""Reading MNIST-format idx files (plain or gzip-compressed), strictly validated."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from pixelsmith.errors import UserError

# idx type codes (third magic byte) -> big-endian numpy dtype.
IDX_DTYPES: dict[int, str] = {
    0x08: ">u1",
    0x09: ">i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, decompressed when the name ends in .gz."""
    try:
        if path.suffix.lower() == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"idx file {path} does not exist; check the path") from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise UserError(
            f"idx file {path} is not a valid gzip file ({e}); re-download or re-extract it"
        ) from None
    except OSError as e:
        raise UserError(f"cannot read idx file {path} ({e}); check its permissions") from None


def parse_idx(data: bytes, where: str = "<bytes>") -> np.ndarray:
    """Decode idx bytes into a native-endian array, raising UserError when they are malformed."""
    fix = "re-download or re-extract it"
    if len(data) < 4:
        raise UserError(
            f"idx file {where} is too short to hold a header ({len(data)} bytes); {fix}"
        )
    zero, code, ndim = int.from_bytes(data[:2], "big"), data[2], data[3]
    if zero != 0 or code not in IDX_DTYPES or ndim == 0:
        raise UserError(
            f"idx file {where} has a bad magic number {data[:4].hex()} "
            f"(expected 0000 + type code + rank); it is not an idx file, {fix}"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise UserError(f"idx file {where} is truncated inside its header; {fix}")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(IDX_DTYPES[code])
    need = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    have = len(data) - header
    if have < need:
        raise UserError(
            f"idx file {where} is truncated: shape {shape} needs {need} data bytes "
            f"but it holds {have}; {fix}"
        )
    if have > need:
        raise UserError(
            f"idx file {where} has {have - need} bytes after its data (shape {shape}); "
            f"it is corrupt, {fix}"
        )
    arr = np.frombuffer(data, dtype=dtype, count=need // dtype.itemsize, offset=header)
    return arr.reshape(shape).astype(dtype.newbyteorder("="), copy=True)


def read_idx(path: str | Path) -> np.ndarray:
    """Read an idx file (optionally .gz) into a native-endian numpy array."""
    path = Path(path)
    return parse_idx(_read_bytes(path), str(path))


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write an array as an idx file (gzip-compressed when the name ends in .gz)."""
    path = Path(path)
    codes = {np.dtype(v).newbyteorder("="): k for k, v in IDX_DTYPES.items()}
    arr = np.asarray(array)
    code = codes.get(arr.dtype.newbyteorder("="))
    if code is None:
        raise UserError(f"cannot write dtype {arr.dtype} to idx file {path}; use uint8")
    head = bytes([0, 0, code, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    body = head + arr.astype(IDX_DTYPES[code]).tobytes()
    if path.suffix.lower() == ".gz":
        body = gzip.compress(body, compresslevel=6)
    path.write_bytes(body)
