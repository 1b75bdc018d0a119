"""MMTM (Joze et al. 2020) and the MSAF-vs-MMTM FLOP figures of paper 002."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import fuselab as fl

F64 = torch.float64


def test_mmtm_equation(gen: torch.Generator) -> None:
    op = fl.fusion.build("mmtm", in_channels={"video": 4, "audio": 3}, reduction=2).double()
    assert op.hidden == int(2 * 7 / 2)
    x = {
        "video": torch.randn(3, 4, 2, 3, 2, dtype=F64, generator=gen),
        "audio": torch.randn(3, 3, 5, dtype=F64, generator=gen),
    }
    s = torch.cat([x["video"].mean(dim=(2, 3, 4)), x["audio"].mean(dim=2)], dim=1)
    z = torch.relu(op.squeeze(s))
    out = op(x)
    ev = 2 * torch.sigmoid(op.excite["video"](z))
    ea = 2 * torch.sigmoid(op.excite["audio"](z))
    torch.testing.assert_close(out["video"], x["video"] * ev[:, :, None, None, None])
    torch.testing.assert_close(out["audio"], x["audio"] * ea[:, :, None])
    g = op.gates(x)
    assert all(bool(((v > 0) & (v < 2)).all()) for v in g.values())


def test_mmtm_zero_excitation_is_identity(gen: torch.Generator) -> None:
    op = fl.fusion.build("mmtm", in_channels={"a": 4, "b": 3})
    for lin in op.excite.values():
        torch.nn.init.zeros_(lin.weight)
        torch.nn.init.zeros_(lin.bias)
    x = {"a": torch.randn(2, 4, 6, generator=gen), "b": torch.randn(2, 3, 2, 2, generator=gen)}
    out = op(x)
    for m in x:
        torch.testing.assert_close(out[m], x[m])


def _flops(op: torch.nn.Module, c: int) -> int:
    """FLOPs of one forward on the paper's two (4, C, 3, 128, 128) maps, on the meta device."""
    op = op.eval().to("meta")
    x = {m: torch.empty(4, c, 3, 128, 128, device="meta") for m in ("video", "audio")}
    with FlopCounterMode(display=False) as counter:
        op(x)
    return int(counter.get_total_flops())


@pytest.mark.parametrize(
    ("c", "msaf_flops", "mmtm_flops"), [(64, 10_240, 131_072), (1024, 2_621_440, 33_554_432)]
)
def test_flops_at_paper_sizes(c: int, msaf_flops: int, mmtm_flops: int) -> None:
    ch = {"video": c, "audio": c}
    msaf = fl.fusion.build("msaf", in_channels=ch, block_channel=c // 2, reduction=4)
    mmtm = fl.fusion.build("mmtm", in_channels=ch, reduction=4)
    # Only the matmuls are counted (2 FLOPs per multiply-add, batch 4). Paper: 10.4K / 2.6M
    # (MSAF), 131.6K / 33.6M (MMTM); the small excess there is elementwise work.
    assert _flops(msaf, c) == msaf_flops
    assert _flops(mmtm, c) == mmtm_flops
