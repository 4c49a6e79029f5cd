"""The model file: safetensors tensors plus JSON metadata, in one file.

Layout (the safetensors format): an 8-byte little-endian header length, a JSON
header describing each tensor (dtype, shape, byte range) with a `__metadata__`
map of strings, then the raw tensor bytes. lstmae keeps its metadata as one JSON
document under `__metadata__["lstmae"]` and a SHA-256 over that document and
every tensor's bytes under `__metadata__["sha256"]`.

A model file is untrusted input: it is parsed as data only (never unpickled),
every size it claims is checked against caps and the real file size before
anything is allocated, and the checksum catches truncation and flipped bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

import numpy as np

from lstmae.errors import ModelFileError
from lstmae.io import atomic_output

FORMAT_NAME = "lstmae"
FORMAT_VERSION = 1
MAX_FILE_BYTES = 2 * 1024**3
MAX_HEADER_BYTES = 16 * 1024**2


def _checksum(metadata_json: str, tensors: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256(metadata_json.encode("utf-8"))
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        digest.update(name.encode("utf-8"))
        digest.update(str(array.dtype).encode() + str(array.shape).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def save_model_file(
    path: str | os.PathLike, tensors: dict[str, np.ndarray], metadata: dict
) -> None:
    """Write tensors and metadata atomically: the old file stays whole until the new one is."""
    from safetensors.numpy import save

    metadata = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, **metadata}
    metadata_json = json.dumps(metadata, sort_keys=True)
    tensors = {name: np.ascontiguousarray(array) for name, array in tensors.items()}
    blob = save(
        tensors,
        metadata={"lstmae": metadata_json, "sha256": _checksum(metadata_json, tensors)},
    )
    with atomic_output(path) as tmp:
        Path(tmp).write_bytes(blob)


def load_model_file(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict]:
    """Read and verify a model file; any problem is a ModelFileError naming the file."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"{path}: no such model file; train one with `lstmae fit`")
    if not path.is_file():
        raise ModelFileError(f"{path}: is not a file; give the path of a model file")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ModelFileError(f"{path}: {size} bytes is larger than any lstmae model file")
    data = path.read_bytes()
    header = _parse_header(path, data)
    raw_meta = header.pop("__metadata__", None)
    if not isinstance(raw_meta, dict) or "lstmae" not in raw_meta:
        raise ModelFileError(f"{path}: is a safetensors file but not an lstmae model")
    try:
        metadata = json.loads(raw_meta["lstmae"])
    except (TypeError, ValueError):
        raise ModelFileError(
            f"{path}: model metadata is not valid JSON; the file is damaged"
        ) from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT_NAME:
        raise ModelFileError(f"{path}: is not an lstmae model file")
    version = metadata.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: model file format version {version} is not supported by this lstmae "
            f"(reads version {FORMAT_VERSION}); refit the model with this version"
        )
    tensors = _read_tensors(path, data)
    if raw_meta.get("sha256") != _checksum(raw_meta["lstmae"], tensors):
        raise ModelFileError(f"{path}: checksum mismatch; the model file is damaged, refit it")
    return tensors, metadata


def _parse_header(path: Path, data: bytes) -> dict:
    not_model = f"{path}: is not an lstmae model file (or is truncated)"
    if len(data) < 8:
        raise ModelFileError(not_model)
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > MAX_HEADER_BYTES or 8 + header_len > len(data):
        raise ModelFileError(not_model)
    try:
        header = json.loads(data[8 : 8 + header_len].decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ModelFileError(not_model) from None
    if not isinstance(header, dict):
        raise ModelFileError(not_model)
    return header


def _read_tensors(path: Path, data: bytes) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError
    from safetensors.numpy import load

    try:
        return load(data)
    except (SafetensorError, ValueError, TypeError) as exc:
        raise ModelFileError(
            f"{path}: tensors cannot be read ({exc}); the file is damaged"
        ) from None
