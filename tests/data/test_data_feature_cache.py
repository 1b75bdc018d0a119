"""FeatureCache: epoch 2 never calls the encoder, weights invalidate, corruption is recomputed."""

from __future__ import annotations

import multiprocessing as mp
import pickle
import sqlite3

import pytest
import torch
from torch import nn

from fuselab.data.feature_cache import CachedEncoder, FeatureCache, encoder_key


class Counting(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(6, 3)
        self.rows = 0
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.rows += x.shape[0]
        return torch.tanh(self.lin(x))


@pytest.fixture
def data():
    torch.manual_seed(0)
    return torch.randn(40, 6), [f"s{i}" for i in range(40)]


def test_second_epoch_never_calls_the_encoder(tmp_path, data):
    x, ids = data
    enc = Counting()
    cached = CachedEncoder(enc, FeatureCache(tmp_path / "f.sqlite"))
    for epoch in range(2):
        for perm in torch.randperm(40, generator=torch.Generator().manual_seed(epoch)).split(16):
            out = cached(x[perm], [ids[i] for i in perm.tolist()])
            assert torch.allclose(out, torch.tanh(enc.lin(x[perm])).detach())
        if epoch == 0:
            assert enc.rows == 40
            calls = enc.calls
    assert enc.calls == calls and enc.rows == 40
    assert cached.cache.stats == {"hits": 40, "misses": 40, "corrupt": 0}


def test_only_missing_rows_are_computed(tmp_path, data):
    x, ids = data
    enc, cache = Counting(), FeatureCache(tmp_path / "f.sqlite")
    key = encoder_key(enc)
    cache.encode(enc, x[:10], ids[:10], key=key)
    enc.rows = 0
    out = cache.encode(enc, x[5:20], ids[5:20], key=key)
    assert enc.rows == 10 and out.shape == (15, 3)


def test_weight_change_gives_a_new_key_and_identical_weights_the_same(tmp_path, data):
    x, ids = data
    a = Counting()
    b = Counting()
    b.load_state_dict(a.state_dict())
    assert encoder_key(a) == encoder_key(b) and encoder_key(a, "vit") != encoder_key(a)
    cache = FeatureCache(tmp_path / "f.sqlite")
    old = cache.encode(a, x, ids)
    with torch.no_grad():
        b.lin.weight.add_(1.0)
    assert encoder_key(b) != encoder_key(a)
    new = cache.encode(b, x, ids)
    assert b.rows == 40 and not torch.allclose(old, new)
    assert cache.prune(keep=[encoder_key(b)]) == 40 and cache.count() == 40


def test_corrupted_entry_is_detected_and_recomputed(tmp_path, data):
    x, ids = data
    enc, path = Counting(), tmp_path / "f.sqlite"
    cache = FeatureCache(path)
    key = encoder_key(enc)
    good = cache.encode(enc, x, ids, key=key)
    with sqlite3.connect(path) as db:
        blob = bytearray(db.execute("SELECT data FROM features WHERE sample_id='s3'").fetchone()[0])
        blob[0] ^= 0xFF
        db.execute("UPDATE features SET data=? WHERE sample_id='s3'", (bytes(blob),))
    enc.rows = 0
    again = cache.encode(enc, x, ids, key=key)
    assert enc.rows == 1 and cache.stats["corrupt"] == 1
    assert torch.equal(again, good)


def test_dtypes_shapes_and_persistence(tmp_path):
    path = tmp_path / "f.sqlite"
    feats = [torch.randn(3, 4).to(torch.bfloat16), torch.arange(5), torch.tensor(2.5)]
    with FeatureCache(path) as c:
        c.put("k", [0, 1, 2], feats)
    got = FeatureCache(path).get("k", [2, 0, 1, 9])
    assert got[3] is None
    for a, b in zip(got[:3], [feats[2], feats[0], feats[1]], strict=True):
        assert a is not None and a.dtype == b.dtype and torch.equal(a, b)
    with pytest.raises(ValueError, match="2 ids but 3"):
        FeatureCache(path).put("k", [0, 1], feats)


def _reader(cache: FeatureCache, ids: list[str], queue) -> None:
    got = cache.get("k", ids)
    queue.put(
        float(sum(t.sum() for t in got if t is not None))
        if all(t is not None for t in got)
        else -1.0
    )


def test_several_reader_processes(tmp_path):
    cache = FeatureCache(tmp_path / "f.sqlite")
    feats = torch.arange(60.0).reshape(20, 3)
    ids = [str(i) for i in range(20)]
    cache.put("k", ids, feats)
    clone = pickle.loads(pickle.dumps(cache))  # picklable: reconnects lazily
    assert torch.equal(clone.get("k", ["4"])[0], feats[4])
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_reader, args=(cache, ids, queue)) for _ in range(3)]
    for p in procs:
        p.start()
    cache.put("k2", ["x"], torch.ones(1, 3))  # a write while the readers read
    results = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert results == [float(feats.sum())] * 3


def test_threads_share_one_cache(tmp_path, data):
    from concurrent.futures import ThreadPoolExecutor

    x, ids = data
    enc, cache = Counting(), FeatureCache(tmp_path / "f.sqlite")
    key = encoder_key(enc)
    expected = cache.encode(enc, x, ids, key=key)
    with ThreadPoolExecutor(4) as pool:
        outs = list(
            pool.map(
                lambda s: cache.encode(enc, x[s : s + 10], ids[s : s + 10], key=key),
                range(0, 40, 10),
            )
        )
    assert torch.equal(torch.cat(outs), expected) and enc.rows == 40
    cache.close()
    assert cache.count() == 40  # reconnects after close
