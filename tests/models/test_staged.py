"""The staged family: what each fusion plan computes, unimodal variants, sizes, gradients."""

from __future__ import annotations

import pytest
import torch

import fuselab.models as fm
from fuselab import fusion
from fuselab.models import LateStagedModel, StagedModel
from fuselab.models.shapes import resize


def build(encoders, fusion_plan, shapes, **extra):
    cfg = {"name": "staged", "encoders": encoders, "fusion": fusion_plan, **extra}
    return fm.build(cfg, input_shapes=shapes, num_outputs=10).eval()


def test_late_concat_is_head_of_concatenated_encoder_features(encoders, shapes, batch):
    model = build(encoders, [{"at": "late", "operator": "concat"}], shapes, head={"hidden": [8]})
    assert isinstance(model, LateStagedModel)
    assert model.modalities == ("image", "audio")
    feats = {m: model.encoders[m](batch[m]) for m in model.modalities}
    expected = model.head.net(torch.cat([feats["image"], feats["audio"]], dim=1))
    torch.testing.assert_close(model(batch), expected)
    assert model.feature_dims == {"image": 16, "audio": 64}
    torch.testing.assert_close(model.unimodal_features(batch)["audio"], feats["audio"])
    counts = model.parameter_counts()
    assert counts["total"] == counts["encoder.image"] + counts["encoder.audio"] + counts["head"]
    assert counts["fusion"] == 0  # plain concatenation has no parameters


def test_late_fusion_keeps_branches_independent(encoders, shapes, batch):
    model = build(encoders, [{"at": "late", "operator": "concat"}], shapes)
    other = dict(batch, audio=torch.randn_like(batch["audio"]))
    assert torch.equal(model.unimodal_features(batch)["image"], model.unimodal_features(other)["image"])


def test_after_stage_k_resizes_concatenates_and_continues_in_the_trunk(encoders, shapes, batch):
    model = build(encoders, [{"at": 2, "operator": "concat", "adapter": "resize"}], shapes)
    assert type(model) is StagedModel and model.trunk_modality == "audio"  # deepest encoder
    assert model.trunk.stage_names[2:] == ("conv3", "conv4", "conv5", "conv6")
    img = model.encoders["image"].run(batch["image"], 0, 2)  # (B, 4, 3, 3)
    aud = model.encoders["audio"].run(batch["audio"], 0, 2)  # (B, 4, 4, 2)
    fused = torch.cat([resize(img, "map", aud.shape[2:]), aud], dim=1)
    expected = model.head(model.trunk(fused))
    torch.testing.assert_close(model(batch), expected)
    assert model.trunk.stages["conv3"].conv.in_channels == 8
    assert "conv3" not in model.encoders["image"].stages  # the image branch stops at stage 2


def test_early_fusion_feeds_resized_inputs_to_the_trunk(encoders, shapes, batch):
    model = build(encoders, [{"at": "early", "operator": "concat", "adapter": "resize"}], shapes)
    fused = torch.cat([resize(batch["image"], "map", (16, 8)), batch["audio"]], dim=1)
    torch.testing.assert_close(model(batch), model.head(model.trunk(fused)))
    assert model.trunk.stages["conv1"].conv.in_channels == 2


def test_fusion_depths_give_comparable_sizes(encoders, shapes):
    sizes = {}
    for at in ["early", 1, 2, 3, 4]:
        plan = [{"at": at, "operator": "concat", "adapter": "resize"}]
        sizes[at] = build(encoders, plan, shapes).parameter_counts()["total"]
    sizes["late"] = build(encoders, [{"at": "late", "operator": "concat"}], shapes).parameter_counts()["total"]
    assert max(sizes.values()) / min(sizes.values()) < 1.3, sizes


def test_decision_fusion_applies_the_operator_to_per_modality_heads(encoders, shapes, batch):
    model = build(encoders, [{"at": "decision", "operator": "late"}], shapes)
    logits = {m: model.heads[m](model.encoders[m](batch[m])) for m in model.modalities}
    torch.testing.assert_close(model(batch), (logits["image"] + logits["audio"]) / 2)


def test_lowrank_late_fusion_counts_fusion_parameters(encoders, shapes, batch):
    plan = [{"at": "late", "operator": "lowrank", "options": {"out_dim": 6, "rank": 3}}]
    model = build(encoders, plan, shapes)
    op = fusion.build("lowrank", in_dims={"image": 16, "audio": 64}, out_dim=6, rank=3)
    assert model.parameter_counts()["fusion"] == sum(p.numel() for p in op.parameters())
    assert model(batch).shape == (4, 10)


def test_vector_merge_of_sequences_per_step(gen):
    shapes = {"a": (5, 3), "b": (5, 4)}
    enc = {"a": {"type": "lstm", "hidden": [6, 6]}, "b": {"type": "gru", "hidden": [2, 7]}}
    model = build(enc, [{"at": "rnn1", "operator": "sum", "options": {"out_dim": 3}}], shapes)
    assert model.trunk_modality == "a"
    x = {m: torch.randn(2, *s, generator=gen) for m, s in shapes.items()}
    a1, b1 = model.encoders["a"].run(x["a"], 0, 1), model.encoders["b"].run(x["b"], 0, 1)
    fused = model.merger.op({"a": a1, "b": b1})  # (2, 5, 3): per time step
    assert fused.shape == (2, 5, 3)
    torch.testing.assert_close(model(x), model.head(model.trunk(fused)))


def test_lattice_early_fusion_concatenates_vectors(gen):
    shapes = {"x1": (6,), "x2": (4,)}
    enc = {"x1": {"type": "mlp", "hidden": [5, 5]}, "x2": {"type": "mlp", "hidden": [5, 5]}}
    model = build(enc, [{"at": "early", "operator": "concat"}], shapes)
    x = {m: torch.randn(3, *s, generator=gen) for m, s in shapes.items()}
    assert model.trunk_modality == "x1" and model.trunk.stages["fc1"].fc.in_features == 10
    torch.testing.assert_close(model(x), model.head(model.trunk(torch.cat([x["x1"], x["x2"]], 1))))


def test_unimodal_remove_and_mask(encoders, shapes, batch):
    plan = [{"at": "late", "operator": "concat"}]
    full = build(encoders, plan, shapes)
    removed = build(encoders, plan, shapes, drop=["audio"])
    masked = build(encoders, plan, shapes, drop=["audio"], drop_mode="mask")
    assert removed.modalities == ("image",)
    assert removed.parameter_counts()["total"] < full.parameter_counts()["total"]
    assert masked.parameter_counts()["total"] == full.parameter_counts()["total"]
    other = dict(batch, audio=torch.randn_like(batch["audio"]))
    for model in (removed, masked):
        assert torch.equal(model(batch), model(other))  # the audio values never matter
    zeroed = dict(batch, audio=torch.zeros_like(batch["audio"]))
    masked.load_state_dict(full.state_dict())
    torch.testing.assert_close(masked(batch), full(zeroed))
    cfg = fm.unimodal_config({"name": "staged", "encoders": encoders, "fusion": plan}, "audio")
    assert fm.build(cfg, input_shapes=shapes, num_outputs=10).modalities == ("audio",)


def test_gradients_reach_every_branch(encoders, shapes, batch):
    model = build(encoders, [{"at": 1, "operator": "concat", "adapter": "resize"}], shapes).train()
    model(batch).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoders.parameters())


def test_bad_inputs_name_the_modality(encoders, shapes, batch):
    model = build(encoders, [{"at": "late", "operator": "concat"}], shapes)
    with pytest.raises(ValueError, match=r"missing modality 'audio'"):
        model({"image": batch["image"]})
    with pytest.raises(ValueError, match=r"modality 'image': expected shape \(B, 1, 12, 12\), got \(4, 1, 12, 11\)"):
        model(dict(batch, image=batch["image"][..., :11]))
    with pytest.raises(TypeError, match="expected a dict of named modalities"):
        model([batch["image"], batch["audio"]])


def test_msaf_points_couple_the_branches_at_their_stages(encoders, shapes, batch):
    assert "msaf" in fusion.available()
    plan = [
        {"at": {"image": "conv2", "audio": "conv3"}, "operator": "msaf", "options": {"reduction": 1}},
        {"at": "late", "operator": "msaf", "options": {"reduction": 1}},
        {"at": "late", "operator": "concat"},
    ]
    model = build(encoders, plan, shapes)
    assert [p.stages for p in model.plan] == [{"image": 2, "audio": 3}, {"image": 4, "audio": 6}]
    assert model.fm_ops[0].op.in_channels == {"image": 4, "audio": 8}
    assert model.fm_ops[1].op.in_channels == {"image": 16, "audio": 64}
    other = dict(batch, audio=torch.randn_like(batch["audio"]))
    # unlike plain late fusion, the image features now depend on the audio input
    assert not torch.allclose(model.unimodal_features(batch)["image"],
                              model.unimodal_features(other)["image"])
    # and the first point sits between conv2 and conv3 of the image branch
    img2 = model.encoders["image"].run(batch["image"], 0, 2)
    aud3 = model.encoders["audio"].run(batch["audio"], 0, 3)
    out = model.fm_ops[0]({"image": img2, "audio": aud3})
    torch.testing.assert_close(model.branches(batch)["image"],
                               model.fm_ops[1]({"image": model.encoders["image"].run(out["image"], 2, 4),
                                                "audio": model.encoders["audio"].run(out["audio"], 3, 6)})["image"])
    counts = model.parameter_counts()
    assert counts["fusion"] == sum(p.numel() for p in model.fm_ops.parameters())
