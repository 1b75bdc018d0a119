"""Writes a tiny data root in the shared-data layout (MNIST IDX gz + FSDD-style wavs) for tests."""

from __future__ import annotations

import gzip
import hashlib
import struct
import wave
from pathlib import Path

import numpy as np


def write_idx(path: Path, array: np.ndarray) -> None:
    code = {np.dtype(np.uint8): 0x08}[array.dtype]
    header = bytes([0, 0, code, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())


def write_wav(path: Path, samples: np.ndarray, rate: int = 8000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((samples * 32767).astype("<i2").tobytes())


def make_root(
    root: Path,
    *,
    per_class: int = 8,
    speakers: tuple[str, ...] = ("ann", "bob"),
    takes: int = 5,
    skip_digit: int | None = None,
    seed: int = 0,
) -> dict[str, str]:
    """Write a fake data root; return its manifest ``{relative path: sha256}``."""
    rng = np.random.default_rng(seed)
    for name, reps in (("train", per_class), ("t10k", max(1, per_class // 4))):
        labels = np.repeat(np.arange(10, dtype=np.uint8), reps)
        images = rng.integers(0, 256, (len(labels), 28, 28), dtype=np.uint8)
        write_idx(root / f"mnist/{name}-images-idx3-ubyte.gz", images)
        write_idx(root / f"mnist/{name}-labels-idx1-ubyte.gz", labels)
    for digit in range(10):
        if digit == skip_digit:
            continue
        for spk in speakers:
            for take in range(takes):
                n = int(rng.integers(600, 1200))
                t = np.arange(n) / 8000
                write_wav(
                    root / f"fsdd/recordings/{digit}_{spk}_{take}.wav",
                    0.3 * np.sin(2 * np.pi * (200 + 50 * digit) * t),
                )
    return manifest_of(root)


def manifest_of(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
