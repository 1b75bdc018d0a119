"""``describe`` (behind ``fuselab operators``) and the ``concat`` operator."""

from __future__ import annotations

import pytest
import torch

import fuselab as fl


def test_describe_builds_every_operator_at_default_sizes() -> None:
    rows = fl.fusion.describe({"image": 64, "audio": 32}, 128)
    assert [r["name"] for r in rows] == fl.fusion.available()
    by_name = {r["name"]: r for r in rows}
    assert all(r["params"] is not None for r in rows), [r for r in rows if r["params"] is None]
    assert by_name["msaf"]["kind"] == by_name["mmtm"]["kind"] == "feature-map"
    assert by_name["concat"]["params"] == 96 * 128 + 128
    assert by_name["tensor"]["params"] == 65 * 33 * 128 + 128
    assert by_name["lowrank"]["params"] == 4 * (65 + 33) * 128 + 4 + 128
    assert by_name["msaf"]["params"] == (16 * 4 + 4 + 8) + 6 * (4 * 16 + 16)  # 6 blocks of 16
    assert by_name["late"]["params"] == 0


def test_describe_reports_unbuildable_operators() -> None:
    rows = {r["name"]: r for r in fl.fusion.describe({"a": 4, "b": 3, "c": 2}, 8)}
    assert rows["bilinear"]["params"] is None
    assert "exactly 2 modalities" in rows["bilinear"]["summary"]


def test_concat_with_and_without_projection(gen: torch.Generator) -> None:
    a, b = torch.randn(3, 4, generator=gen), torch.randn(3, 2, generator=gen)
    plain = fl.fusion.build("concat", in_dims={"a": 4, "b": 2})
    assert plain.out_dim == 6
    torch.testing.assert_close(plain({"a": a, "b": b}), torch.cat([a, b], 1))
    proj = fl.fusion.build("concat", in_dims={"a": 4, "b": 2}, out_dim=5)
    torch.testing.assert_close(proj({"a": a, "b": b}), proj.proj(torch.cat([a, b], 1)))
    with pytest.raises(ValueError, match="out_dim=5 differs from sum of in_dims=6"):
        fl.fusion.build("concat", in_dims={"a": 4, "b": 2}, out_dim=5, project=False)
