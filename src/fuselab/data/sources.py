"""Reading raw source files safely: IDX (MNIST), PCM wav (FSDD, ESC-50), sha256 manifests.

Every reader validates what it reads and raises a ``ValueError`` naming the file and the expected
and received value (truncated IDX payload, wrong magic, truncated wav, wrong sample rate, checksum
mismatch), so a damaged download never turns into silently wrong training data.
"""

from __future__ import annotations

import gzip
import hashlib
import wave
import zlib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

import numpy as np

#: The packaged manifest: sha256 of every file of the shared data layout (mnist/, fsdd/, esc50/).
MANIFEST_NAME = "shared_data.sha256"

_IDX_DTYPES: dict[int, str] = {
    0x08: "u1",
    0x09: "i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of the file at ``path``."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def parse_manifest(text: str) -> dict[str, str]:
    """``{relative path: sha256}`` from ``sha256sum``-style lines (``<hex>  <path>``)."""
    out: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        digest, _, rel = line.partition("  ")
        if len(digest) != 64 or not rel:
            raise ValueError(f"manifest line {n}: expected '<sha256>  <path>', got {line!r}")
        out[rel.lstrip("*")] = digest.lower()
    return out


def packaged_manifest() -> dict[str, str]:
    """The sha256 list shipped with fuselab (derived from the shared data's MANIFEST.sha256)."""
    text = resources.files("fuselab.data").joinpath("manifests", MANIFEST_NAME).read_text()
    return parse_manifest(text)


def resolve_manifest(manifest: str | Path | Mapping[str, str] | None) -> dict[str, str]:
    """``{relative path: sha256}`` from a dataset's ``manifest`` option: ``None`` = the packaged
    list, a mapping as given, or the path of a ``sha256sum``-style file."""
    if manifest is None:
        return packaged_manifest()
    if isinstance(manifest, Mapping):
        return dict(manifest)
    return parse_manifest(Path(manifest).read_text())


def verify_file(path: Path, expected: str) -> None:
    """``ValueError`` naming ``path`` unless its sha256 is ``expected``."""
    got = sha256_file(path)
    if got != expected.lower():
        raise ValueError(
            f"checksum mismatch for {path}: expected sha256 {expected}, got {got}. "
            "The file is corrupted or not the published one; delete it and download it again."
        )


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (MNIST format, optionally gzipped) into an array of its declared shape.

    Raises ``ValueError`` naming the file when the magic number is wrong or the payload is
    shorter or longer than the header's dimensions say (a truncated download).
    """
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:  # truncated stream, bad header, corrupt deflate
        raise ValueError(
            f"{path}: cannot read IDX file ({e}); the file is truncated or corrupted"
        ) from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path}: not an IDX file (magic bytes {raw[:4].hex()!r})")
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: IDX header truncated ({len(raw)} bytes, need {header})")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(
            f"{path}: IDX payload has {len(raw) - header} bytes, header shape {shape} needs "
            f"{expected}; the file is truncated or corrupted"
        )
    return (
        np.frombuffer(raw, dtype=dtype, offset=header)
        .reshape(shape)
        .astype(dtype.newbyteorder("="))
    )


def read_wav(path: Path, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Read a 16-bit PCM wav as ``(float32 samples in [-1, 1], sample rate)``; mono, or mixed to mono.

    ``sample_rate`` (if given) must match the file's: a ``ValueError`` names the file, the
    expected and the received rate. A file whose data chunk is shorter than its header declares
    raises a ``ValueError`` naming the file.
    """
    try:
        with wave.open(str(path), "rb") as w:
            rate, channels, width, frames = (
                w.getframerate(),
                w.getnchannels(),
                w.getsampwidth(),
                w.getnframes(),
            )
            data = w.readframes(frames)
    except (wave.Error, EOFError) as e:
        raise ValueError(
            f"{path}: cannot read wav file ({e}); the file is truncated or corrupted"
        ) from e
    if width != 2:
        raise ValueError(f"{path}: expected 16-bit PCM (2-byte samples), got {8 * width}-bit")
    if sample_rate is not None and rate != sample_rate:
        raise ValueError(f"{path}: expected sample rate {sample_rate} Hz, got {rate} Hz")
    if len(data) != frames * channels * width:
        raise ValueError(
            f"{path}: wav data has {len(data)} bytes, header declares {frames} frames "
            f"({frames * channels * width} bytes); the file is truncated"
        )
    x = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
    if channels > 1:
        x = x.reshape(-1, channels).mean(axis=1)
    return x, rate
