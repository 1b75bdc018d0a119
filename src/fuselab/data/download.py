"""Fetching missing source files from their public homes, each verified against a sha256 list.

Layout under the data root (the same as ``shared/data``)::

    mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz   MNIST mirrors
    fsdd/recordings/{digit}_{speaker}_{index}.wav           FSDD GitHub repository, pinned commit
    esc50/audio/{fold}-{id}-{take}-{target}.wav             ESC-50 re-upload, pinned commit

Nothing is extracted from archives (MNIST stays gzipped and is read with :mod:`gzip`; FSDD and
ESC-50 are fetched as raw files), and every destination is checked to stay inside the data root.
A file is written to ``<name>.part`` and renamed only after its sha256 matches, so an interrupted
or tampered download never leaves a file that looks complete. Tests pass ``file://`` URLs in
``sources`` or a ``fetcher`` function, never the network.
"""

from __future__ import annotations

import os
import shutil
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fuselab.data.sources import sha256_file

FSDD_COMMIT = "26eb9aaf76e81b692f806f9140c2d2777410d7a1"
ESC50_COMMIT = "7085beb71d02eb515b8bad56ad2a29e8fa0dcd08"

#: Path prefix -> base URLs tried in order (the file's remaining path is appended).
SOURCES: dict[str, tuple[str, ...]] = {
    "mnist/": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    "fsdd/recordings/": (
        f"https://raw.githubusercontent.com/Jakobovski/free-spoken-digit-dataset/{FSDD_COMMIT}/recordings/",
    ),
    "esc50/audio/": (
        f"https://raw.githubusercontent.com/caitlinnguyen0/ESC-50/{ESC50_COMMIT}/audio/",
    ),
}

#: ``fetcher(url, destination)`` writes the resource at ``url`` to ``destination``.
Fetcher = Callable[[str, Path], None]


def urllib_fetch(url: str, dest: Path, timeout: float = 60.0) -> None:
    """Download ``url`` (http(s) or file://) to ``dest`` with the standard library."""
    with urllib.request.urlopen(url, timeout=timeout) as response, open(dest, "wb") as f:
        shutil.copyfileobj(response, f)


def safe_destination(root: Path, rel: str) -> Path:
    """``root / rel``, refusing absolute paths and ``..`` that would escape ``root``."""
    dest = (root / rel).resolve()
    if Path(rel).is_absolute() or not dest.is_relative_to(root.resolve()):
        raise ValueError(f"refusing to write {rel!r} outside the data root {root}")
    return dest


def urls_for(rel: str, sources: Mapping[str, Sequence[str]] | None = None) -> list[str]:
    """Candidate URLs of the file ``rel`` (longest matching prefix of ``sources``)."""
    table = SOURCES if sources is None else sources
    for prefix in sorted(table, key=len, reverse=True):
        if rel.startswith(prefix):
            return [base + rel[len(prefix) :] for base in table[prefix]]
    return []


def fetch_verified(
    rel: str,
    root: Path,
    sha256: str,
    *,
    sources: Mapping[str, Sequence[str]] | None = None,
    fetcher: Fetcher | None = None,
) -> Path:
    """Download ``rel`` into ``root`` from the first URL whose content has digest ``sha256``.

    Raises ``ValueError`` when every mirror served a file with another checksum and
    ``ConnectionError`` when none could be reached; no partial file is left behind.
    """
    dest = safe_destination(root, rel)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    fetch = fetcher or urllib_fetch
    errors: list[str] = []
    mismatch = False
    for url in urls_for(rel, sources):
        try:
            fetch(url, part)
        except OSError as e:  # URLError, HTTPError, timeouts are all OSErrors
            errors.append(f"{url}: {e}")
            part.unlink(missing_ok=True)
            continue
        got = sha256_file(part)
        if got == sha256.lower():
            os.replace(part, dest)
            return dest
        mismatch = True
        errors.append(f"{url}: checksum mismatch, expected sha256 {sha256}, got {got}")
        part.unlink(missing_ok=True)
    detail = "; ".join(errors) or "no download source is known for this path"
    if mismatch:
        raise ValueError(f"checksum mismatch downloading {rel}: {detail}")
    raise ConnectionError(f"could not download {rel}: {detail}")


def ensure_files(
    root: Path,
    rels: Iterable[str],
    manifest: Mapping[str, str],
    *,
    download: bool = True,
    sources: Mapping[str, Sequence[str]] | None = None,
    fetcher: Fetcher | None = None,
    workers: int = 8,
) -> list[Path]:
    """Make sure every file in ``rels`` exists under ``root``, downloading the missing ones.

    Missing files without a manifest digest, with ``download=False``, or that cannot be fetched
    raise ``FileNotFoundError`` explaining where to put them. Returns the downloaded paths.
    """
    missing = [r for r in rels if not (root / r).is_file()]
    if not missing:
        return []
    where = (
        f"Put the files under {root} with the layout mnist/*.gz, fsdd/recordings/*.wav, "
        "esc50/audio/*.wav (as in the project's shared/data), or point root= / --data-dir / "
        "$FUSELAB_DATA at such a folder."
    )
    unknown = [r for r in missing if r not in manifest]
    if unknown:
        raise FileNotFoundError(
            f"missing {len(unknown)} file(s) with no known checksum, e.g. {root / unknown[0]}. {where}"
        )
    if not download:
        raise FileNotFoundError(
            f"missing {len(missing)} file(s), e.g. {root / missing[0]}, and download=False. {where}"
        )

    def one(rel: str) -> Path:
        return fetch_verified(rel, root, manifest[rel], sources=sources, fetcher=fetcher)

    try:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            return list(pool.map(one, missing))
    except ConnectionError as e:
        raise FileNotFoundError(f"{e}. No network? {where}") from e
