"""Token pooling (thesis 004 section 1.3.3): segment means/maxes, attention pooling, padding."""

from __future__ import annotations

import math

import pytest
import torch

from fuselab.models.transformer import TokenPool


def no_pad(b: int, n: int) -> torch.Tensor:
    return torch.zeros(b, n, dtype=torch.bool)


def segments(n: int, n_out: int) -> list[tuple[int, int]]:
    # adaptive pooling segments: floor(i n / N) .. ceil((i + 1) n / N)
    return [(math.floor(i * n / n_out), math.ceil((i + 1) * n / n_out)) for i in range(n_out)]


@pytest.mark.parametrize(("n", "n_out"), [(8, 4), (7, 3), (5, 5), (6, 1)])
def test_mean_and_max_pool_contiguous_segments(gen, n, n_out):
    x = torch.randn(2, n, 5, generator=gen)
    for kind, reduce in (("mean", torch.mean), ("max", torch.amax)):
        out, pad = TokenPool(kind, 5, n_out)(x, no_pad(2, n))
        want = torch.stack([reduce(x[:, a:b], dim=1) for a, b in segments(n, n_out)], dim=1)
        torch.testing.assert_close(out, want)
        assert not pad.any()


def test_padded_tokens_are_left_out_of_mean_and_max(gen):
    x = torch.randn(2, 6, 4, generator=gen)
    pad = torch.tensor([[0, 0, 0, 0, 1, 1], [0, 1, 1, 1, 1, 1]], dtype=torch.bool)
    mean, mpad = TokenPool("mean", 4, 1)(x, pad)
    torch.testing.assert_close(mean[0, 0], x[0, :4].mean(0))
    torch.testing.assert_close(mean[1, 0], x[1, 0])
    mx, _ = TokenPool("max", 4, 1)(x, pad)
    torch.testing.assert_close(mx[0, 0], x[0, :4].amax(0))
    assert not mpad.any()
    # two segments of 3: sample 1's second segment holds only padding
    seg, seg_pad = TokenPool("mean", 4, 2)(x, pad)
    assert seg_pad.tolist() == [[False, False], [False, True]]
    torch.testing.assert_close(seg[0, 1], x[0, 3])
    assert torch.all(seg[1, 1] == 0)


def attention_reference(pool: TokenPool, x: torch.Tensor) -> torch.Tensor:
    """softmax(q Wq (x Wk)^T / sqrt(d)) x Wv, then the output projection (one head)."""
    a = pool.attn
    d = x.shape[-1]
    wq, wk, wv = a.in_proj_weight.split(d)
    bq, bk, bv = a.in_proj_bias.split(d)
    q = pool.queries @ wq.T + bq
    k = x @ wk.T + bk
    v = x @ wv.T + bv
    w = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(d), dim=-1)
    return (w @ v) @ a.out_proj.weight.T + a.out_proj.bias


def test_attention_pool_is_learned_query_cross_attention(gen):
    torch.manual_seed(0)
    pool = TokenPool("attention", 8, 3, num_heads=1).eval()
    x = torch.randn(2, 10, 8, generator=gen)
    out, pad = pool(x, no_pad(2, 10))
    assert out.shape == (2, 3, 8) and not pad.any()
    torch.testing.assert_close(out, attention_reference(pool, x))
    # no positions inside the pool: a permutation of the tokens gives the same pooled tokens
    perm = torch.randperm(10, generator=gen)
    torch.testing.assert_close(pool(x[:, perm], no_pad(2, 10))[0], out)


@pytest.mark.parametrize("kind", ["mean", "max", "attention"])
def test_appended_padding_never_changes_the_pooled_tokens(gen, kind):
    torch.manual_seed(0)
    pool = TokenPool(kind, 8, 1, num_heads=2).eval()
    x = torch.randn(3, 5, 8, generator=gen)
    junk = 100 * torch.randn(3, 4, 8, generator=gen)
    padded = torch.cat([x, junk], dim=1)
    mask = torch.cat([no_pad(3, 5), torch.ones(3, 4, dtype=torch.bool)], dim=1)
    torch.testing.assert_close(pool(padded, mask)[0], pool(x, no_pad(3, 5))[0])


@pytest.mark.parametrize("kind", ["mean", "max", "attention"])
def test_all_padding_sample_gives_masked_zeros_not_nan(gen, kind):
    pool = TokenPool(kind, 4, 2, num_heads=1)
    x = torch.randn(2, 4, 4, generator=gen)
    pad = torch.tensor([[0, 0, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)
    out, out_pad = pool(x, pad)
    assert torch.isfinite(out).all()
    assert out_pad[1].all() and not out_pad[0].any()
    assert torch.all(out[1] == 0)


def test_none_is_identity_and_unknown_kind_is_rejected(gen):
    x = torch.randn(2, 3, 4, generator=gen)
    mask = no_pad(2, 3)
    out, out_mask = TokenPool("none", 4, 3)(x, mask)
    assert out is x and out_mask is mask
    with pytest.raises(ValueError, match=r"'median'.*attention"):
        TokenPool("median", 4, 2)
