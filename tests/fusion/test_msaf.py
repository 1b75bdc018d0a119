"""MSAF (paper 002 section 3): equations 1-5, lambda, padding, BlockDropout, segments."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

import fuselab as fl
from fuselab.fusion import MSAF

F64 = torch.float64


def _maps(gen: torch.Generator, b: int = 6) -> dict[str, Tensor]:
    # Channel counts that are not multiples of the block (5 = 2+2+1, 3 = 2+1): padding is exercised.
    return {
        "video": torch.randn(b, 5, 3, 2, 2, dtype=F64, generator=gen),
        "audio": torch.randn(b, 3, 7, dtype=F64, generator=gen),
        "image": torch.randn(b, 4, 3, 3, dtype=F64, generator=gen),
    }


def _op(gen: torch.Generator, lam: float = 0.0, **kw: object) -> MSAF:
    kw = {"block_channel": 2, "reduction": 1, **kw}
    op = fl.fusion.build("msaf", in_channels={"video": 5, "audio": 3, "image": 4}, lam=lam, **kw)
    for p in op.parameters():
        torch.nn.init.normal_(p, generator=gen)  # spread the attention away from uniform
    return op.double().eval()


def _ratio(out: Tensor, x: Tensor) -> Tensor:
    return (out / x).flatten(2)  # (B, C, positions)


@pytest.mark.parametrize("lam", [0.0, 0.3])
def test_eval_factors_per_channel_in_range_and_softmax_over_blocks(
    lam: float, gen: torch.Generator
) -> None:
    op = _op(gen, lam)
    x = _maps(gen)
    out = op(x)
    att = op.attention(x)
    for m, xm in x.items():
        assert out[m].shape == xm.shape  # padding never leaks into the output
        r = _ratio(out[m], xm)
        torch.testing.assert_close(r, r[..., :1].expand_as(r))  # one factor per sample/channel
        assert att[m].shape == (6, math.ceil(xm.shape[1] / 2), 2)
        torch.testing.assert_close(r[..., 0], att[m].flatten(1)[:, : xm.shape[1]])
        assert bool((att[m] >= lam - 1e-12).all() and (att[m] <= 1 + 1e-12).all())
    a = torch.cat([(att[m] - lam) / (1 - lam) for m in x], dim=1)  # (B, all blocks, C)
    assert a.shape == (6, 3 + 2 + 2, 2)
    torch.testing.assert_close(a.sum(dim=1), torch.ones(6, 2, dtype=F64))
    assert a.std() > 0.05  # the attention is not trivially uniform


def test_lambda_one_returns_input_unchanged(gen: torch.Generator) -> None:
    op = _op(gen, lam=1.0).train()
    x = _maps(gen)
    out = op(x)
    for m in x:
        assert torch.equal(out[m], x[m])


def test_matches_paper_equations_written_out(gen: torch.Generator) -> None:
    op = _op(gen, lam=0.25)
    x = _maps(gen)
    c = 2
    descriptors = []
    blocks = {}
    for m, xm in x.items():
        n = math.ceil(xm.shape[1] / c)
        padded = F.pad(xm.movedim(1, -1), (0, n * c - xm.shape[1])).movedim(-1, 1)
        blocks[m] = padded.reshape(xm.shape[0], n, c, *xm.shape[2:])  # split
        s_m = blocks[m].sum(dim=1)  # element-wise sum over B_m
        descriptors.append(s_m.flatten(2).mean(-1))  # equation 1
    g = sum(descriptors)
    join = op.blocks[0].join
    z = F.relu(join[1](join[0](g)))  # equation 2 + BN + ReLU
    w = op.blocks[0].highlight
    u = (z @ w.weight.T + w.bias).unflatten(-1, (-1, c))  # equation 3, one FC per block
    a = torch.softmax(u, dim=1)  # equation 4
    out = op(x)
    start = 0
    for m, xm in x.items():
        n = blocks[m].shape[1]
        factor = 0.25 + 0.75 * a[:, start : start + n]  # equation 5
        start += n
        scaled = blocks[m] * factor.reshape(*factor.shape, *([1] * (xm.dim() - 2)))
        want = scaled.flatten(1, 2)[:, : xm.shape[1]]  # equation 6, padding dropped
        torch.testing.assert_close(out[m], want)


def test_block_dropout_drops_whole_blocks_in_training_only(gen: torch.Generator) -> None:
    op = _op(gen, block_dropout=0.5)
    plain = _op(gen, block_dropout=0.0)
    plain.load_state_dict(op.state_dict())
    x = _maps(gen, b=16)
    op.train()
    plain.train()
    torch.manual_seed(0)
    dropped, kept = op(x), plain(x)
    ratios = torch.cat(
        [(_ratio(dropped[m], x[m]) / _ratio(kept[m], x[m]))[..., 0] for m in x], dim=1
    )  # (B, channels): 0 (dropped) or 1/(1-p) = 2 (kept)
    assert bool((((ratios - 0).abs() < 1e-9) | ((ratios - 2).abs() < 1e-9)).all())
    assert (ratios == 0).any() and (ratios > 1).any()
    video = _ratio(dropped["video"], x["video"])[..., 0] / _ratio(kept["video"], x["video"])[..., 0]
    torch.testing.assert_close(video[:, 0], video[:, 1])  # channels of one block share the mask
    op.eval()
    plain.eval()
    for m in x:
        torch.testing.assert_close(op(x)[m], plain(x)[m])


def _block_mask(op: MSAF, x: dict[str, Tensor], mask: Tensor) -> dict[str, Tensor]:
    """Per-channel view ``{m: (B, C_m, 1, ...)}`` of a ``(B, all blocks)`` block mask."""
    out, start = {}, 0
    for m, n in op.num_blocks.items():
        per_channel = mask[:, start : start + n].repeat_interleave(op.block_channel, dim=1)
        out[m] = per_channel[:, : x[m].shape[1]].reshape(*x[m].shape[:2], *[1] * (x[m].dim() - 2))
        start += n
    return out


@pytest.mark.parametrize("mode", ["factor", "authors"])
def test_block_dropout_modes_mask_the_right_tensors(
    mode: str, gen: torch.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = 0.4
    op = _op(gen, block_dropout=p, block_dropout_mode=mode).train()
    op.blocks[0].join[1].eval()  # BatchNorm on running stats: the factors are a plain function
    x = _maps(gen, b=4)
    # blocks: video 3, audio 2, image 2; every sample keeps some and drops some
    keep = torch.tensor(
        [[1, 0, 1, 1, 0, 1, 0], [0, 1, 1, 0, 1, 1, 1], [1, 1, 0, 1, 1, 0, 1], [1, 1, 1, 1, 1, 1, 0]],
        dtype=F64,
    )
    mask = keep / (1 - p)
    monkeypatch.setattr(type(op.blocks[0]), "keep_mask", lambda self, b, dtype, device: mask)
    out = op(x)
    m_ch = _block_mask(op, x, mask)
    masked = {m: x[m] * m_ch[m] for m in x}
    # Eval-mode factors of the input the join sees: all blocks, or only the kept ones.
    seen = op.attention(masked if mode == "authors" else x)
    for m in x:
        f = seen[m].flatten(1)[:, : x[m].shape[1]].reshape(m_ch[m].shape)
        want = masked[m] * m_ch[m] * f if mode == "authors" else x[m] * m_ch[m] * f
        torch.testing.assert_close(out[m], want)
        dropped = (m_ch[m] == 0).expand_as(x[m])
        assert bool((out[m][dropped] == 0).all()) and bool((out[m][~dropped] != 0).all())
    if mode == "authors":  # the join really saw the masked blocks
        assert not torch.allclose(seen["audio"], op.attention(x)["audio"])
        # kept blocks carry 1/(1-p)^2 times the factor
        ratio = out["audio"][:, :, 0] / (x["audio"][:, :, 0] * seen["audio"].flatten(1)[:, :3])
        kept = m_ch["audio"][:, :, 0] > 0
        torch.testing.assert_close(ratio[kept], torch.full_like(ratio[kept], 1 / (1 - p) ** 2))


@pytest.mark.parametrize("mode", ["factor", "authors"])
def test_block_dropout_mask_statistics_and_eval_identity(mode: str, gen: torch.Generator) -> None:
    p = 0.3
    op = _op(gen, block_dropout=p, block_dropout_mode=mode).train()
    torch.manual_seed(0)
    mask = op.blocks[0].keep_mask(20_000, F64, torch.device("cpu"))
    assert mask.shape == (20_000, 7)
    assert mask.unique().tolist() == [0.0, pytest.approx(1 / (1 - p))]
    assert abs(float((mask == 0).double().mean()) - p) < 0.01
    assert abs(float(mask.mean()) - 1.0) < 0.01  # unbiased in expectation
    # Eval mode never masks: identical to the same weights without BlockDropout.
    plain = _op(gen, block_dropout=0.0)
    plain.load_state_dict(op.state_dict())
    x = _maps(gen)
    op.eval()
    for m, v in op(x).items():
        torch.testing.assert_close(v, plain(x)[m], rtol=0, atol=0)


def test_attention_uses_eval_semantics_and_keeps_mode(gen: torch.Generator) -> None:
    op = _op(gen, block_dropout=0.5).train()
    x = _maps(gen)
    att_train = op.attention(x)
    assert op.training and op.blocks[0].join[1].training
    op.eval()
    for m, a in op.attention(x).items():
        torch.testing.assert_close(att_train[m], a)


@pytest.mark.parametrize("layout", ["sequence", "channels_first"])
def test_segments_remainder_joins_last_segment(layout: str, gen: torch.Generator) -> None:
    op = (
        fl.fusion.build(
            "msaf",
            in_channels={"a": 4, "b": 3},
            block_channel=2,
            reduction=1,
            layout=layout,
            segments=3,
        )
        .double()
        .eval()
    )
    for p in op.parameters():
        torch.nn.init.normal_(p, generator=gen)
    # T_a = 7 -> segments of 2, 2, 3 frames; T_b = 6 -> 2, 2, 2.
    seq = {
        "a": torch.randn(2, 7, 4, dtype=F64, generator=gen),
        "b": torch.randn(2, 6, 3, dtype=F64, generator=gen),
    }
    x = (
        seq
        if layout == "sequence"
        else {m: v.transpose(1, 2).unsqueeze(-1) for m, v in seq.items()}
    )
    out = op(x)
    att = op.attention(x)
    assert att["a"].shape == (2, 3, 2, 2)
    r = out["a"] / x["a"]
    r = r if layout == "sequence" else r.squeeze(-1).transpose(1, 2)  # (B, T, C)
    for s, frames in enumerate([(0, 2), (2, 4), (4, 7)]):
        seg = r[:, frames[0] : frames[1]]
        torch.testing.assert_close(seg, seg[:, :1].expand_as(seg))
        torch.testing.assert_close(seg[:, 0], att["a"][:, s].flatten(1)[:, :4])
    # Each segment has its own block: segment means come only from its frames.
    moved = {m: v.clone() for m, v in x.items()}
    if layout == "sequence":
        moved["a"][:, 6] += 3.0
    else:
        moved["a"][:, :, 6] += 3.0
    changed = (op(moved)["b"] - out["b"]).abs()
    changed = changed if layout == "sequence" else changed.squeeze(-1).transpose(1, 2)
    assert changed[:, :4].max() == 0 and changed[:, 4:].max() > 0


def test_bad_settings_name_the_key() -> None:
    ch = {"a": 4, "b": 3}
    with pytest.raises(ValueError, match="reduction must be"):
        fl.fusion.build("msaf", in_channels=ch, block_channel=2, reduction=4)
    with pytest.raises(ValueError, match=r"lam must be in \[0, 1\], got 1.5"):
        fl.fusion.build("msaf", in_channels=ch, block_channel=2, reduction=1, lam=1.5)
    with pytest.raises(ValueError, match="block_dropout"):
        fl.fusion.build("msaf", in_channels=ch, block_channel=2, reduction=1, block_dropout=1.0)
    with pytest.raises(ValueError, match=r"block_dropout_mode must be one of .*got 'paper'"):
        fl.fusion.build("msaf", in_channels=ch, block_channel=2, reduction=1,
                        block_dropout_mode="paper")
    with pytest.raises(ValueError, match="layout must be one of"):
        fl.fusion.build("msaf", in_channels=ch, block_channel=2, reduction=1, layout="nhwc")
    op = fl.fusion.build("msaf", in_channels=ch, block_channel=2, reduction=1, segments=4)
    with pytest.raises(ValueError, match=r"modality 'b': 4 segments need at least 4 time steps"):
        op({"a": torch.randn(2, 4, 5), "b": torch.randn(2, 3, 3)})


def _msaf_params(c: int) -> int:
    block, reduced, n_blocks = c // 2, c // 8, 4
    join = block * reduced + reduced + 2 * reduced  # FC + BatchNorm affine
    return join + n_blocks * (reduced * block + block)


@pytest.mark.parametrize("c", [64, 128, 256, 512, 1024])
def test_paper_parameter_counts_far_below_mmtm(c: int) -> None:
    ch = {"video": c, "audio": c}
    msaf = fl.fusion.build("msaf", in_channels=ch, block_channel=c // 2, reduction=4)
    mmtm = fl.fusion.build("mmtm", in_channels=ch, reduction=4)
    n_msaf = fl.fusion.count_parameters(msaf)
    assert n_msaf == _msaf_params(c)
    assert n_msaf * 10 < fl.fusion.count_parameters(mmtm)
    if c == 1024:
        assert n_msaf == 330_112  # "reaching a maximum of 330K parameters"


@pytest.mark.parametrize("segments", [1, 3])
def test_sequence_layout_equals_channels_first_on_transposed_input(
    segments: int, gen: torch.Generator
) -> None:
    kw = {"in_channels": {"a": 4, "b": 3}, "block_channel": 2, "reduction": 1, "segments": segments}
    seq_op = fl.fusion.build("msaf", layout="sequence", **kw).double().eval()
    cf_op = fl.fusion.build("msaf", layout="channels_first", **kw).double().eval()
    for p in seq_op.parameters():
        torch.nn.init.normal_(p, generator=gen)
    cf_op.load_state_dict(seq_op.state_dict())
    seq = {
        "a": torch.randn(2, 7, 4, dtype=F64, generator=gen),
        "b": torch.randn(2, 5, 3, dtype=F64, generator=gen),
    }
    out_seq = seq_op(seq)
    out_cf = cf_op({m: v.transpose(1, 2) for m, v in seq.items()})
    for m in seq:
        torch.testing.assert_close(out_cf[m].transpose(1, 2), out_seq[m])
