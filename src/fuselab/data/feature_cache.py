"""A disk cache of frozen-encoder outputs (thesis 004, section 2.2), in SQLite with WAL.

When a modality's encoder is frozen (a pretrained ViT, a fixed spectrogram CNN) its output for a
sample never changes, so it is computed once and read back afterwards::

    cache = FeatureCache("runs/features.sqlite")
    vit_key = encoder_key(vit, name="vit-b16")          # identity + sha256 of the weights
    for x, ids in loader:                                # x: (B, 3, 224, 224), ids: B sample ids
        tokens = cache.encode(vit, x, ids, key=vit_key)  # (B, 196, 768); epoch 2 never calls vit

Entries are keyed by ``(encoder key, sample id)``. The encoder key hashes the encoder's class,
an optional name and every parameter and buffer, so changing the encoder or its weights gives a
new key and the old entries are simply never read (``prune`` removes them). Every entry stores a
blake2b checksum of its bytes; an entry that fails it (or whose size disagrees with its shape and
dtype) is deleted and recomputed, never used. Tensors are stored as raw bytes with their dtype
and shape (no pickle). SQLite's WAL journal lets several reader processes (data-loader workers,
Ray tasks) read while one writes; each process and thread opens its own connection (a cache object can be
pickled or forked and reconnects in the child).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

Inputs = Tensor | Mapping[str, Tensor]
_CHUNK = 500  # ids per SELECT: below SQLite's host-parameter limit on every version

_SCHEMA = """
CREATE TABLE IF NOT EXISTS features (
    key TEXT NOT NULL, sample_id TEXT NOT NULL, shape TEXT NOT NULL, dtype TEXT NOT NULL,
    checksum TEXT NOT NULL, data BLOB NOT NULL, PRIMARY KEY (key, sample_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS encoders (key TEXT PRIMARY KEY, description TEXT, created REAL);
"""


def encoder_key(encoder: nn.Module, name: str | None = None) -> str:
    """``"<module.Class>[:name]@<sha256 of parameters and buffers>"``; identical weights, same key."""
    h = hashlib.sha256()
    for pname, t in sorted(encoder.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{pname}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    cls = f"{type(encoder).__module__}.{type(encoder).__qualname__}"
    return f"{cls}{':' + name if name else ''}@{h.hexdigest()[:32]}"


def _checksum(blob: bytes) -> str:
    return hashlib.blake2b(blob, digest_size=16).hexdigest()


def _encode(t: Tensor) -> tuple[str, str, bytes]:
    t = t.detach().cpu().contiguous()
    blob = t.reshape(-1).view(torch.uint8).numpy().tobytes()
    return ",".join(map(str, t.shape)), str(t.dtype).removeprefix("torch."), blob


def _decode(shape: str, dtype: str, blob: bytes) -> Tensor | None:
    dt = getattr(torch, dtype, None)
    if not isinstance(dt, torch.dtype):
        return None
    dims = tuple(int(d) for d in shape.split(",") if d)
    n = 1
    for d in dims:
        n *= d
    if len(blob) != n * dt.itemsize:
        return None
    return torch.frombuffer(bytearray(blob), dtype=torch.uint8).view(dt).reshape(dims)


class FeatureCache:
    """``(encoder key, sample id) -> Tensor`` store in one SQLite file (see the module docstring).

    ``stats`` counts ``hits``, ``misses`` (computed), and ``corrupt`` (failed checksum, recomputed).
    """

    def __init__(self, path: str | Path, *, timeout: float = 60.0) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self.stats = {"hits": 0, "misses": 0, "corrupt": 0}
        # one connection per (process, thread): sqlite3 connections may not cross either
        self._conns: dict[tuple[int, int], sqlite3.Connection] = {}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db()

    def _db(self) -> sqlite3.Connection:
        who = (os.getpid(), threading.get_ident())
        conn = self._conns.get(who)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
            self._conns[who] = conn
        return conn

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_conns"] = {}
        return state

    def close(self) -> None:
        """Close this process's connections (reopened on next use)."""
        pid = os.getpid()
        for who in [w for w in self._conns if w[0] == pid]:
            conn = self._conns.pop(who)
            if who[1] == threading.get_ident():
                conn.close()
            # another thread's connection cannot be closed from here; dropping it lets it be
            # collected when that thread no longer uses it

    def __enter__(self) -> FeatureCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, key: str, ids: Sequence[Any]) -> list[Tensor | None]:
        """Cached tensors for ``ids`` (``None`` where missing or corrupt; corrupt rows are deleted)."""
        sids = [str(i) for i in ids]
        found: dict[str, Tensor] = {}
        bad: list[str] = []
        db = self._db()
        for start in range(0, len(sids), _CHUNK):
            chunk = sids[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = db.execute(
                f"SELECT sample_id, shape, dtype, checksum, data FROM features "
                f"WHERE key = ? AND sample_id IN ({marks})",
                [key, *chunk],
            ).fetchall()
            for sid, shape, dtype, checksum, blob in rows:
                t = _decode(shape, dtype, blob) if _checksum(blob) == checksum else None
                if t is None:
                    bad.append(sid)
                else:
                    found[sid] = t
        if bad:
            self.stats["corrupt"] += len(bad)
            db.executemany(
                "DELETE FROM features WHERE key = ? AND sample_id = ?", [(key, s) for s in bad]
            )
        return [found.get(s) for s in sids]

    def put(self, key: str, ids: Sequence[Any], features: Tensor | Sequence[Tensor]) -> None:
        """Store ``features[i]`` for ``ids[i]`` (replacing existing entries), in one transaction."""
        if len(ids) != len(features):
            raise ValueError(f"FeatureCache.put: {len(ids)} ids but {len(features)} feature rows")
        rows = []
        for sid, t in zip(ids, features, strict=True):
            shape, dtype, blob = _encode(t)
            rows.append((key, str(sid), shape, dtype, _checksum(blob), blob))
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(
                "INSERT OR IGNORE INTO encoders VALUES (?, ?, ?)",
                (key, key.split("@")[0], time.time()),
            )
            db.executemany("INSERT OR REPLACE INTO features VALUES (?, ?, ?, ?, ?, ?)", rows)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def encode(
        self,
        encoder: Callable[[Any], Tensor],
        inputs: Inputs,
        ids: Sequence[Any],
        *,
        key: str | None = None,
    ) -> Tensor:
        """``encoder(inputs)`` ``(B, ...)`` through the cache: only rows not cached are computed.

        ``inputs`` is a ``(B, ...)`` tensor or a dict of them; ``ids`` names the B samples. The
        encoder is called once, on the missing rows only (not at all when every row is cached).
        ``key`` defaults to :func:`encoder_key` of ``encoder`` (hashing its weights on every call:
        pass a precomputed key in training loops).
        """
        n = len(ids)
        batch = next(iter(inputs.values())) if isinstance(inputs, Mapping) else inputs
        if batch.shape[0] != n:
            raise ValueError(f"FeatureCache.encode: {n} ids but inputs have {batch.shape[0]} rows")
        if key is None:
            if not isinstance(encoder, nn.Module):
                raise TypeError(
                    "FeatureCache.encode: pass key= for an encoder that is not an nn.Module"
                )
            key = encoder_key(encoder)
        cached = self.get(key, ids)
        missing = [i for i, t in enumerate(cached) if t is None]
        self.stats["hits"] += n - len(missing)
        if missing:
            self.stats["misses"] += len(missing)
            sel = torch.tensor(missing, device=batch.device)
            sub = (
                {m: v[sel] for m, v in inputs.items()}
                if isinstance(inputs, Mapping)
                else inputs[sel]
            )
            with torch.no_grad():
                out = encoder(sub)
            self.put(key, [ids[i] for i in missing], out)
            for j, i in enumerate(missing):
                cached[i] = out[j].detach().cpu()
        return torch.stack([t for t in cached if t is not None]).to(batch.device)

    def count(self, key: str | None = None) -> int:
        """Number of entries (of one encoder key, or all)."""
        q, args = (
            ("SELECT COUNT(*) FROM features", [])
            if key is None
            else ("SELECT COUNT(*) FROM features WHERE key = ?", [key])
        )
        return int(self._db().execute(q, args).fetchone()[0])

    def __len__(self) -> int:
        return self.count()

    def keys(self) -> list[str]:
        """Encoder keys with at least one entry."""
        return [r[0] for r in self._db().execute("SELECT DISTINCT key FROM features ORDER BY key")]

    def invalidate(self, key: str) -> int:
        """Delete every entry of encoder ``key``; returns how many were deleted."""
        db = self._db()
        n = db.execute("DELETE FROM features WHERE key = ?", (key,)).rowcount
        db.execute("DELETE FROM encoders WHERE key = ?", (key,))
        return int(n)

    def prune(self, keep: Sequence[str]) -> int:
        """Delete the entries of every encoder key not in ``keep`` (stale weights)."""
        return sum(self.invalidate(k) for k in self.keys() if k not in set(keep))


class CachedEncoder(nn.Module):
    """A frozen encoder behind a :class:`FeatureCache`: ``forward(x, ids) -> (B, ...)`` features.

    The key is computed once from the weights at construction; call :meth:`refresh_key` after
    changing them (or build a new wrapper).
    """

    def __init__(self, encoder: nn.Module, cache: FeatureCache, name: str | None = None) -> None:
        super().__init__()
        self.encoder = encoder.eval().requires_grad_(False)
        self.cache = cache
        self.name = name
        self.key = encoder_key(encoder, name)

    def refresh_key(self) -> str:
        """Recompute the key from the current weights."""
        self.key = encoder_key(self.encoder, self.name)
        return self.key

    def forward(self, x: Inputs, ids: Sequence[Any]) -> Tensor:
        return self.cache.encode(self.encoder, x, ids, key=self.key)
