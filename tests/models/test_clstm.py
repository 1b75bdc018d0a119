"""The paper-000 multimodal C-LSTM: cell equations, where each fusion layer mixes, step readout."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

import fuselab.models as fm
from fuselab.models import ProgressiveFusion
from fuselab.models.clstm import ConvLSTMCell, FCFusionCLSTM, InitialFusionCLSTM

SHAPES = {"image": (1, 8, 8), "audio": (1, 6, 5)}
SMALL = {"units": 4, "hidden": 6}


def clstm(layer, **extra):
    cfg = {"name": "clstm", "fusion_layer": layer, **SMALL, **extra}
    return fm.build(cfg, input_shapes=SHAPES, num_outputs=3).eval()


@pytest.fixture
def x(gen):
    return {m: torch.randn(2, *s, generator=gen) for m, s in SHAPES.items()}


def test_cell_follows_the_lstm_gate_equations(gen):
    cell = ConvLSTMCell(2, 3, kernel=3, frame_dim=5)
    v = torch.randn(2, 2, 4, 4, generator=gen)
    a = torch.randn(2, 5, generator=gen)
    h0, c0 = torch.randn(2, 3, 4, 4, generator=gen), torch.randn(2, 3, 4, 4, generator=gen)
    h, c = cell.step(cell.input_gates(v) + cell.frame_gates(a), h0, c0)
    gates = (F.conv2d(v, cell.conv_x.weight, cell.conv_x.bias, padding=1)
             + F.conv2d(h0, cell.conv_h.weight, padding=1)
             + (a @ cell.lin_a.weight.T)[:, :, None, None])
    i, f, g, o = gates.chunk(4, dim=1)
    c_ref = torch.sigmoid(f) * c0 + torch.sigmoid(i) * torch.tanh(g)
    torch.testing.assert_close(c, c_ref)
    torch.testing.assert_close(h, torch.sigmoid(o) * torch.tanh(c_ref))


def test_initial_layer_mixes_image_patch_and_audio_frame_at_every_position(x):
    model = clstm("initial")
    cell = model.cell1
    h0 = c0 = torch.zeros(2, 4, 8, 8)
    gates = cell.input_gates(x["image"]) + cell.frame_gates(model.frames(x["audio"])[:, 0])
    h1, _ = cell.step(gates, h0, c0)
    # one image pixel changes the state only within the 3x3 kernel around it (shared local weights)
    img = x["image"].clone()
    img[:, :, 0, 0] += 1.0
    h1b, _ = cell.step(cell.input_gates(img) + cell.frame_gates(model.frames(x["audio"])[:, 0]), h0, c0)
    changed = (h1b - h1).abs().amax(dim=(0, 1)) > 0
    assert changed[:2, :2].all() and not changed[2:, :].any() and not changed[:, 2:].any()
    # the audio frame reaches every position
    aud = x["audio"] + 1.0
    h1c, _ = cell.step(cell.input_gates(x["image"]) + cell.frame_gates(model.frames(aud)[:, 0]), h0, c0)
    assert ((h1c - h1).abs().amax(dim=(0, 1)) > 0).all()


@pytest.mark.parametrize("layer", ["initial", "second", "fc", "visual-only", "audio-only"])
def test_step_logits_are_causal_and_end_at_the_output(layer, x):
    model = clstm(layer, hidden=32)  # wide enough that the ReLU layer is never entirely dead
    steps = model.step_logits(x)
    assert steps.shape == (2, 5, 3)
    torch.testing.assert_close(steps[:, -1], model(x))
    later = dict(x, audio=x["audio"].clone())
    later["audio"][..., -1] += 5.0  # the last frame only
    other = model.step_logits(later)
    torch.testing.assert_close(other[:, :-1], steps[:, :-1])
    assert torch.equal(other[:, -1], steps[:, -1]) == (layer == "visual-only")


def test_unimodal_variants_ignore_the_occluded_modality(x):
    vis, aud = clstm("visual-only"), clstm("audio-only")
    assert vis.modalities == ("image",) and aud.modalities == ("audio",)
    assert torch.equal(vis(x), vis(dict(x, audio=torch.randn_like(x["audio"]))))
    assert torch.equal(aud(x), aud(dict(x, image=torch.randn_like(x["image"]))))
    assert vis.cell1.lin_a is None and aud.cell1.conv_x is None
    assert sum(p.numel() for p in vis.fusion_parameters()) == 0
    only = fm.build({"name": "clstm", "fusion_layer": "visual-only", "steps": 3, **SMALL},
                    input_shapes={"image": (1, 8, 8)}, num_outputs=3)
    assert only.step_logits({"image": x["image"]}).shape == (2, 3, 3)


def test_fc_fusion_concatenates_the_streams(x):
    model = clstm("fc")
    assert isinstance(model, FCFusionCLSTM)
    feats = model.unimodal_features(x)
    assert feats["image"].shape == (2, 4 * 2 * 2) and feats["audio"].shape == (2, 4)
    torch.testing.assert_close(model(x), model.dense(torch.cat([feats["image"], feats["audio"]], 1)))
    other = dict(x, audio=torch.randn_like(x["audio"]))
    assert torch.equal(model.unimodal_features(other)["image"], feats["image"])
    assert [p.shape for p in model.fusion_parameters()] == [p.shape for p in model.fc1.parameters()]


def test_parameter_counts_follow_the_appendix_architectures():
    u, k, hid, out, frame = 4, 9, 6, 3, 6  # units, kernel area, dense width, classes, C*F
    head = (u * 2 * 2) * hid + hid + hid * out + out  # 8x8 grid pooled twice -> 2x2
    clstm_layer = 4 * u * u * k  # W_h: the recurrent 3x3 conv of a C-LSTM layer
    initial = (4 * u * 1 * k + 4 * u) + clstm_layer + 4 * u * frame \
        + (4 * u * u * k + 4 * u) + clstm_layer + head
    lstm = 4 * u * (frame + u) + 8 * u  # torch LSTM: W_ih, W_hh, two biases
    second = (u * 1 * k + u) + lstm + (4 * u * u * k + 4 * u) + clstm_layer + 4 * u * u + head
    visual = (u * 1 * k + u) + (u * u * k + u)
    fc = visual + lstm + (4 * u * (u + u) + 8 * u) + (u * 4 + u) * hid + hid + hid * out + out
    sizes = {layer: clstm(layer).parameter_counts()["total"] for layer in ["initial", "second", "fc"]}
    assert sizes == {"initial": initial, "second": second, "fc": fc}
    assert isinstance(clstm("initial"), InitialFusionCLSTM)


def test_without_stream_pools_the_sizes_are_the_appendixs(x):
    # paper 000 A.2 lists no pool after the second / fc models' convolutions: their C-LSTM / dense
    # layers then see the full 8x8 grid (the fc model's dense width follows: u*8*8 + u inputs)
    u, hid, out = 4, 6, 3
    fc = clstm("fc", stream_pools=False)
    feats = fc.unimodal_features(x)
    assert feats["image"].shape == (2, u * 8 * 8) and fc.fc1.in_features == u * 8 * 8 + u
    ref = F.relu(fc.visual[2](F.relu(fc.visual[0](x["image"]))))  # conv, ReLU, conv, ReLU
    torch.testing.assert_close(feats["image"], ref.flatten(1))
    pooled = clstm("fc")
    assert pooled.fc1.in_features == u * 2 * 2 + u
    second = clstm("second", stream_pools=False)
    assert second.fc1.in_features == u * 4 * 4  # C-LSTM on 8x8, one 2x2 pool before the head
    assert second(x).shape == (2, out) and second.step_logits(x).shape == (2, 5, out)
    head = (u * 4 * 4) * hid + hid + hid * out + out
    assert second.parameter_counts()["head"] == head
    with pytest.raises(ValueError, match=r"model\.stream_pools: expected true or false, got 'no'"):
        clstm("fc", stream_pools="no")


def test_time_pool_averages_frames(x):
    model = clstm("initial", time_pool=2)
    frames = model.frames(x["audio"])
    assert frames.shape == (2, 3, 6)
    torch.testing.assert_close(frames[:, 0], x["audio"][:, 0, :, :2].mean(-1))
    torch.testing.assert_close(frames[:, 2], x["audio"][:, 0, :, 4])  # ceil mode: last frame alone
    assert model.step_logits(x).shape == (2, 3, 3)


@pytest.mark.parametrize("inject", ["add", "concat"])
def test_progressive_fusion_around_fc(x, inject):
    base = clstm("fc")
    pro = ProgressiveFusion(base, steps=2, context_dim=3, inject=inject, zero_init=True).eval()
    assert torch.equal(pro(x), base(x))
    free = ProgressiveFusion(base, steps=2, context_dim=3, inject=inject).eval()
    steps = free.step_features(x)
    assert len(steps) == 2
    # the LSTM stream (tanh, never dead like a small ReLU head can be) sees the fed-back context
    torch.testing.assert_close(steps[0]["audio"], base.unimodal_features(x)["audio"])
    assert not torch.allclose(steps[1]["audio"], steps[0]["audio"])
    cfg = fm.build({"name": "clstm", "fusion_layer": "fc", **SMALL, "progressive": {"steps": 3}},
                   input_shapes=SHAPES, num_outputs=3)
    assert isinstance(cfg, ProgressiveFusion) and cfg(x).shape == (2, 3)


@pytest.mark.parametrize(
    ("cfg", "shapes", "match"),
    [
        ({"fusion_layer": "third"}, SHAPES, r"model\.fusion_layer: expected one of \['audio-only', 'fc', 'initial', 'second', 'visual-only'\], got 'third'"),
        ({"fusion_layer": "initial"}, {"image": (1, 8, 8)}, r"model\.fusion_layer: 'initial' needs input 'audio'"),
        ({"layers": 2}, SHAPES, r"model\.layers: unknown key; allowed"),
        ({"units": 0}, SHAPES, r"model\.units: expected an int >= 1, got 0"),
        ({"fusion_layer": "initial", "progressive": {"steps": 2}}, SHAPES, r"model\.progressive: .*allowed with fusion_layer \['fc'\], got 'initial'"),
        ({"fusion_layer": "fc", "progressive": {"at": 1}}, SHAPES, r"progressive\.at: .*allowed: \['input', 0\], got 1"),
        ({}, {"image": (1, 8, 8), "audio": (6, 5)}, r"input 'audio' must be a \(C, F, T\) spectrogram"),
        ({"fusion_layer": "visual-only"}, {"image": (1, 8, 8)}, r"model\.steps: 'visual-only' without an 'audio' input needs"),
    ],
)
def test_config_errors(cfg, shapes, match):
    with pytest.raises(ValueError, match=match):
        fm.build({"name": "clstm", **SMALL, **cfg}, input_shapes=shapes, num_outputs=3)


def test_bad_input_names_the_modality(x):
    model = clstm("second")
    with pytest.raises(ValueError, match=r"modality 'audio': expected shape \(B, 1, 6, 5\), got \(2, 1, 6, 4\)"):
        model(dict(x, audio=x["audio"][..., :4]))


def reference_run(model, inputs, every_step):
    """The step-by-step implementation before the batched rewrite (commit 248e445): every gate
    term computed inside the loop from zero states; kept here as the equality oracle."""
    def step(cell, gates_in, h, c):
        i, f, g, o = (gates_in + cell.conv_h(h)).chunk(4, dim=1)
        c = f.sigmoid() * c + i.sigmoid() * g.tanh()
        return o.sigmoid() * c.tanh(), c

    x = model.prepare(inputs)
    ref = x[model.uses[0]]
    outs = []
    if isinstance(model, fm.clstm.SecondFusionCLSTM):
        v = model.conv(x["image"]).relu()
        static = model.cell.input_gates(F.max_pool2d(v, 2, ceil_mode=True) if model.stream_pools else v)
        seq, _ = model.lstm(model.frames(x["audio"]))
        h = c = seq.new_zeros(seq.shape[0], model.units, *(model.grid2 if model.stream_pools else model.grid))
        for t in range(model.num_steps):
            h, c = step(model.cell, static + model.cell.frame_gates(seq[:, t]), h, c)
            outs.append(model.dense(F.max_pool2d(h, 2, ceil_mode=True).flatten(1)))
    else:
        static = model.cell1.input_gates(x["image"]) if "image" in x else None
        frames = model.frames(x["audio"]) if "audio" in x else None
        h1 = c1 = ref.new_zeros(ref.shape[0], model.units, *model.grid)
        h2 = c2 = ref.new_zeros(ref.shape[0], model.units, *model.grid2)
        for t in range(model.num_steps):
            parts = [g for g in (static, None if frames is None else
                                 model.cell1.frame_gates(frames[:, t])) if g is not None]
            h1, c1 = step(model.cell1, parts[0] if len(parts) == 1 else parts[0] + parts[1], h1, c1)
            h2, c2 = step(model.cell2, model.cell2.input_gates(F.max_pool2d(h1, 2, ceil_mode=True)), h2, c2)
            outs.append(model.dense(F.max_pool2d(h2, 2, ceil_mode=True).flatten(1)))
    return torch.stack(outs, dim=1) if every_step else outs[-1]


@pytest.mark.parametrize(("layer", "pools"), [("initial", True), ("second", True), ("second", False),
                                           ("visual-only", True), ("audio-only", True)])
def test_batched_gates_match_the_step_by_step_reference(layer, pools, gen):
    # odd grid (ceil pooling), time_pool with a short last group, a batch > 1: the batched
    # (T'*B) convolutions must keep every sample's steps apart
    shapes = {"image": (2, 7, 9), "audio": (2, 5, 7)}
    model = fm.build({"name": "clstm", "fusion_layer": layer, "units": 5, "hidden": 16,
                      "time_pool": 2, "stream_pools": pools}, input_shapes=shapes, num_outputs=4)
    x = {m: torch.randn(3, *s, generator=gen) for m, s in shapes.items()}
    for every_step in (True, False):
        expected = reference_run(model, x, every_step)
        torch.testing.assert_close(model.run(x, every_step), expected, rtol=1e-5, atol=1e-6)
        with torch.no_grad():  # the in-place evaluation path of ConvLSTMCell.step
            torch.testing.assert_close(model.run(x, every_step), expected, rtol=1e-5, atol=1e-6)
    # gradients too: training goes through the same graph
    model(x).square().sum().backward()
    new = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    reference_run(model, x, False).square().sum().backward()
    assert new.keys() == {n for n, p in model.named_parameters() if p.grad is not None}
    for n, p in model.named_parameters():
        if p.grad is not None:
            torch.testing.assert_close(new[n], p.grad, rtol=1e-4, atol=1e-6, msg=n)
