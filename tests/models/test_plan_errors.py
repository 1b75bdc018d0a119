"""Build-time validation of fusion plans: errors name the config key and the allowed values."""

from __future__ import annotations

import pytest
import torch

import fuselab.models as fm
from fuselab import fusion

LATE = [{"at": "late", "operator": "concat"}]
MSAF = {"reduction": 1}


def build(encoders, shapes, plan=None, **extra):
    cfg = {"name": "staged", "encoders": encoders, "fusion": LATE if plan is None else plan, **extra}
    return fm.build(cfg, input_shapes=shapes, num_outputs=3)


@pytest.mark.parametrize(
    ("plan", "match"),
    [
        ([{"at": "late", "operator": "blend"}],
         r"model\.fusion\[0\]\.operator: unknown fusion operator 'blend'; allowed: \[.*'concat'"),
        ([{"at": 5, "operator": "concat", "adapter": "resize"}],
         r"model\.fusion\[0\]\.at: stage index 5 is past the depth of encoder 'image' \(4 stages\); "
         r"allowed: 0\.\.4"),
        ([{"at": "conv9", "operator": "concat"}],
         r"model\.fusion\[0\]\.at: unknown stage 'conv9' for encoder 'image'; allowed: .*'conv1'"),
        ([{"at": {"video": 1, "audio": 1}, "operator": "concat"}],
         r"model\.fusion\[0\]\.at: unknown modality 'video'; allowed: \['image', 'audio'\]"),
        ([{"at": {"audio": 1}, "operator": "concat"}],
         r"model\.fusion\[0\]\.at: a merging point needs every modality; missing 'image'"),
        ([{"at": "early", "operator": "concat"}],
         r"model\.fusion\[0\]: cannot combine 'image' map\(1, 12, 12\), 'audio' map\(1, 16, 8\) per "
         r"position without an adapter; set adapter to one of \['pool', 'resize'\]"),
        ([{"at": 1, "operator": "concat", "adapter": "stretch"}],
         r"model\.fusion\[0\]\.adapter: expected one of \['none', 'pool', 'resize'\], got 'stretch'"),
        ([{"at": "late", "operator": "concat"}, {"at": "late", "operator": "sum"}],
         r"model\.fusion: needs exactly one merging point .* got 2"),
        ([], r"model\.fusion: expected a non-empty list of fusion points"),
        ([{"at": "late"}], r"model\.fusion\[0\]: missing required key 'operator'"),
        ([{"at": "late", "operator": "concat", "where": 1}],
         r"model\.fusion\[0\]\.where: unknown key; allowed: \["),
        ([{"at": "late", "operator": "concat", "trunk": "video"}],
         r"model\.fusion\[0\]\.trunk: unknown modality 'video'"),
        ([{"at": "late", "operator": "concat", "adapter": "resize"}],
         r"model\.fusion\[0\]: 'adapter'/'trunk' apply to merges at 'early' or a stage"),
        ([{"at": 2, "operator": "concat", "adapter": "pool", "trunk": "audio"}],
         r"model\.fusion\[0\]\.trunk: with adapter 'pool' the head follows the merge directly"),
        ([{"at": "late", "operator": "concat", "options": {"in_dims": {}}}],
         r"model\.fusion\[0\]\.options: 'in_dims' is filled in by the plan"),
        ([{"at": "late", "operator": "lowrank", "options": {"rank": -1}}],
         r"model\.fusion\[0\]: operator 'lowrank' cannot be built .*rank"),
        ([{"at": "decision", "operator": "late", "options": {"mode": "median"}}],
         r"model\.fusion\[0\]: operator 'late' cannot be built"),
    ],
)
def test_plan_errors(encoders, shapes, plan, match):
    with pytest.raises(ValueError, match=match):
        build(encoders, shapes, plan)


def test_feature_map_point_rules(encoders, shapes):
    assert "msaf" in fusion.available()
    with pytest.raises(ValueError, match=r"model\.fusion\[0\]: the merging point must be the last"):
        build(encoders, shapes, [LATE[0], {"at": 2, "operator": "msaf", "options": MSAF}])
    with pytest.raises(ValueError, match=r"model\.fusion\[1\]\.at: stage 1 of 'image' comes before stage 2"):
        build(encoders, shapes, [{"at": 2, "operator": "msaf", "options": MSAF}, {"at": 1, "operator": "msaf", "options": MSAF}, LATE[0]])
    with pytest.raises(ValueError, match=r"model\.fusion\[0\]\.at: feature-map operator 'msaf' cannot work at 'decision'"):
        build(encoders, shapes, [{"at": "decision", "operator": "msaf", "options": MSAF}, LATE[0]])
    with pytest.raises(ValueError, match=r"is after the merging point"):
        build(encoders, shapes, [{"at": 3, "operator": "msaf", "options": MSAF},
                                 {"at": 2, "operator": "concat", "adapter": "resize"}])


def test_model_level_errors(encoders, shapes):
    with pytest.raises(ValueError, match=r"model\.encoders\.video: modality 'video' is not an input; available: \['audio', 'image'\]"):
        build({**encoders, "video": {"type": "mlp"}}, shapes)
    with pytest.raises(ValueError, match=r"model\.drop: cannot drop every modality"):
        build(encoders, shapes, drop=["image", "audio"])
    with pytest.raises(ValueError, match=r"model\.drop_mode: expected one of \['mask', 'remove'\], got 'hide'"):
        build(encoders, shapes, drop=["audio"], drop_mode="hide")
    with pytest.raises(ValueError, match=r"model\.fuse: unknown key; allowed: \["):
        build(encoders, shapes, fuse="late")
    with pytest.raises(ValueError, match=r"model\.head\.hidden\[0\]: expected an int >= 1, got 0"):
        build(encoders, shapes, head={"hidden": [0]})
    with pytest.raises(ValueError, match=r"model\.name: unknown model family 'stagd'"):
        fm.build({"name": "stagd"}, input_shapes=shapes, num_outputs=3)
    with pytest.raises(ValueError, match=r"the 'staged' family needs key 'fusion'"):
        fm.build({"name": "staged", "encoders": encoders}, input_shapes=shapes, num_outputs=3)


def test_position_merge_refuses_operators_that_pool_sequences() -> None:
    from fuselab.models.merge import PositionMerge
    from fuselab.models.shapes import Shape

    shapes = {"a": Shape("seq", (5, 3)), "b": Shape("seq", (5, 2))}
    options = {"out_dim": 4, "width": 4, "num_heads": 2, "num_layers": 1}
    with pytest.raises(ValueError, match=r"fusion\[0\]\.operator: 'mult' cannot run per position"):
        PositionMerge("mult", shapes, shapes["a"], "none", options, "fusion[0]")
    merge = PositionMerge("nlgate", shapes, shapes["a"], "none", {"out_dim": 4}, "fusion[0]")
    assert merge(
        {"a": torch.randn(2, 5, 3), "b": torch.randn(2, 5, 2)}
    ).shape == (2, 5, 4)


@pytest.mark.parametrize("bad", [0, -3, 2.0, True, "10", None])
def test_num_outputs_must_be_a_positive_int(encoders, shapes, bad) -> None:
    cfg = {"name": "staged", "encoders": encoders, "fusion": LATE}
    with pytest.raises(ValueError, match=rf"num_outputs: expected an int >= 1, got {bad!r}"):
        fm.build(cfg, input_shapes=shapes, num_outputs=bad)
    for family in ("clstm", "token_fusion"):  # checked before any family's factory runs
        with pytest.raises(ValueError, match="num_outputs: expected an int >= 1"):
            fm.build({"name": family}, input_shapes=shapes, num_outputs=bad)
    with pytest.raises(TypeError, match=r"input_shapes: expected a mapping"):
        fm.build(cfg, input_shapes=[(1, 12, 12)], num_outputs=3)
