"""Staged encoders: presets, declared stage shapes, readouts, layout conversions, config errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fuselab.models.encoders import ENCODERS, build_encoder

CASES = [
    ({"preset": "avmnist_image"}, (1, 28, 28)),
    ({"preset": "avmnist_audio", "channels": 2}, (1, 40, 12)),
    ({"type": "conv1d", "channels": 3}, (2, 30)),
    ({"type": "lstm", "hidden": [5, 7]}, (1, 9, 6)),
    ({"type": "gru", "hidden": [4]}, (6, 3)),
    ({"type": "mlp", "hidden": [8, 4]}, (10,)),
    ({"type": "transformer", "d_model": 8, "num_heads": 2}, (1, 9, 6)),
    ({"type": "transformer", "d_model": 8, "num_heads": 2, "tokens": "patches"}, (1, 8, 8)),
    ({"type": "transformer", "d_model": 8, "num_heads": 2}, (5,)),
]


@pytest.mark.parametrize(("cfg", "shape"), CASES)
def test_declared_stage_shapes_match_the_tensors(cfg, shape, gen):
    enc = build_encoder(cfg, shape, where="enc").eval()
    x = torch.randn(3, *shape, generator=gen)
    h = x
    for i in range(enc.depth):
        h = enc.run(h, i, i + 1)
        assert tuple(h.shape[1:]) == enc.shapes[i + 1].dims, (enc.stage_names[i], h.shape)
    assert torch.equal(enc(x), enc.readout(h))
    assert enc(x).shape == (3, enc.feature_dim)


def test_avmnist_presets_follow_paper_001_appendix():
    img = build_encoder({"preset": "avmnist_image"}, (1, 28, 28), where="e")
    aud = build_encoder({"preset": "avmnist_audio"}, (1, 201, 40), where="e")
    assert img.stage_names == ("conv1", "conv2", "conv3", "conv4")
    assert aud.stage_names == tuple(f"conv{i}" for i in range(1, 7))
    kernels = [img.stages[n].conv.kernel_size[0] for n in img.stage_names]
    widths = [img.stages[n].conv.out_channels for n in img.stage_names]
    assert kernels == [5, 3, 3, 3]
    assert widths == [6, 12, 24, 48]  # doubled every layer
    assert [aud.stages[n].conv.kernel_size[0] for n in aud.stage_names] == [5, 3, 3, 3, 3, 3]
    assert img.feature_dim == 48 and aud.feature_dim == 192
    # max-pool 2 at every stage (ceil mode): 28 -> 14 -> 7 -> 4 -> 2
    assert [img.shapes[i].extent for i in range(1, 5)] == [(14, 14), (7, 7), (4, 4), (2, 2)]
    assert aud.shapes[6].extent == (4, 1)  # 201 -> 101 -> 51 -> 26 -> 13 -> 7 -> 4; 40 -> ... -> 1


def test_lenet_readout_is_global_average_pool(gen):
    enc = build_encoder({"type": "lenet", "kernels": [3], "channels": 4}, (1, 8, 8), where="e")
    enc.eval()
    x = torch.randn(2, 1, 8, 8, generator=gen)
    maps = enc.run(x, 0, 1)
    torch.testing.assert_close(enc(x), maps.mean(dim=(2, 3)))
    flat = build_encoder({"type": "lenet", "kernels": [3], "channels": 4, "readout": "flatten"},
                         (1, 8, 8), where="e")
    assert flat.feature_dim == 4 * 4 * 4


def test_lstm_reads_a_spectrogram_as_frames_along_time(gen):
    enc = build_encoder({"type": "lstm", "hidden": [5]}, (2, 3, 7), where="e")
    x = torch.randn(4, 2, 3, 7, generator=gen)
    rnn: nn.LSTM = enc.stages["rnn1"].rnn
    assert rnn.input_size == 6
    frames = x.permute(0, 3, 1, 2).reshape(4, 7, 6)  # frame t = all channels x bins at time t
    out, _ = rnn(frames)
    torch.testing.assert_close(enc(x), out[:, -1])  # default readout: last step


def test_mlp_stage_is_linear_relu(gen):
    enc = build_encoder({"type": "mlp", "hidden": [3]}, (2, 2), where="e")
    x = torch.randn(5, 2, 2, generator=gen)
    fc = enc.stages["fc1"].fc
    torch.testing.assert_close(enc(x), torch.relu(fc(x.flatten(1))))


def test_registered_types():
    assert {"lenet", "conv1d", "lstm", "gru", "mlp", "transformer"} <= set(ENCODERS.available())


@pytest.mark.parametrize(
    ("cfg", "shape", "match"),
    [
        ({"type": "resnet"}, (1, 8, 8), r"enc\.type: unknown encoder type 'resnet'; allowed: \["),
        ({"preset": "vgg"}, (1, 8, 8), r"enc\.preset: unknown preset 'vgg'; allowed: \["),
        ({"type": "lenet", "depth": 3}, (1, 8, 8), r"enc: unknown key 'depth'.*allowed"),
        ({"type": "lenet", "kernels": [3, 0]}, (1, 8, 8), r"enc\.kernels\[1\]: expected an int >= 1, got 0"),
        ({"type": "lenet", "kernels": [3], "widths": [2, 4]}, (1, 8, 8), r"enc\.widths: expected 1 widths"),
        ({"type": "lenet"}, (5, 20), r"expects a \(C, H, W\) input"),
        ({"type": "transformer", "d_model": 6, "num_heads": 4}, (3, 4), r"enc\.num_heads: 4 must divide d_model=6"),
        ({"type": "transformer", "tokens": "patches", "patch": 3}, (1, 8, 8), r"enc\.patch: 3 must divide"),
        ({"type": "lstm", "hidden": [4]}, (6,), r"expects a sequence \(T, D\)"),
        ({"type": "lstm", "readout": "flatten"}, (6, 3), r"readout: for a seq output allowed"),
        ({}, (3,), r"enc: needs 'type'"),
    ],
)
def test_config_errors_name_the_key(cfg, shape, match):
    with pytest.raises(ValueError, match=match):
        build_encoder(cfg, shape, where="enc")


def test_transformer_reads_out_the_token_mean(gen):
    enc = build_encoder({"type": "transformer", "d_model": 8, "num_heads": 2, "num_layers": 1}, (4, 3),
                        where="e").eval()
    x = torch.randn(2, 4, 3, generator=gen)
    tokens = enc.run(x, 0, enc.depth)
    assert tokens.shape == (2, 4, 8)  # (T, D) input: one token per step
    torch.testing.assert_close(enc(x), tokens.mean(dim=1))


def test_transformer_old_key_spelling_is_a_deprecated_alias(gen):
    """``layers`` / ``heads`` (the spelling before the token-fusion vocabulary) still build the
    same encoder, with a DeprecationWarning naming the key; both spellings at once is an error."""
    new = {"type": "transformer", "d_model": 8, "num_heads": 2, "num_layers": 3}
    old = {"type": "transformer", "d_model": 8, "heads": 2, "layers": 3}
    torch.manual_seed(0)
    want = build_encoder(new, (4, 3), where="e").eval()
    torch.manual_seed(0)
    with pytest.warns(DeprecationWarning) as caught:
        got = build_encoder(old, (4, 3), where="e").eval()
    assert sorted(str(w.message).split(" (")[0] for w in caught) == [
        "e.heads: deprecated spelling, use 'num_heads'",
        "e.layers: deprecated spelling, use 'num_layers'",
    ]
    assert got.stage_names == want.stage_names == ("embed", "layer1", "layer2", "layer3")
    x = torch.randn(2, 4, 3, generator=gen)
    torch.testing.assert_close(got(x), want(x))
    with pytest.raises(ValueError, match=r"e: both 'heads' \(deprecated\) and 'num_heads'"):
        build_encoder({**new, "heads": 2}, (4, 3), where="e")
