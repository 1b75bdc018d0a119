"""Build-time validation of the token-fusion transformer config (docs/transformer.md)."""

from __future__ import annotations

import pytest
import torch

import fuselab.models as models
from fuselab.models.transformer import TokenFusionTransformer

SHAPES = {"image": (3, 16, 16), "question": (6,)}
BASE = {"name": "token_fusion", "num_layers": 3, "d_model": 16, "num_heads": 2, "ff_dim": 32}


def build(num_outputs: int = 20, shapes=SHAPES, **kw) -> TokenFusionTransformer:
    model = models.build({**BASE, **kw}, input_shapes=shapes, num_outputs=num_outputs)
    assert isinstance(model, TokenFusionTransformer)
    return model


def test_registered_and_contract_attributes():
    assert "token_fusion" in models.MODELS.available()
    model = build(fusion_spec={"0": ["question"], "2": ["image"]})
    assert model.task == "generation"
    assert model.modalities == ("question", "image")
    assert model.fusion_spec == {0: ["question"], 2: ["image"]}
    # 16x16 image, patch 4 -> 16 patch tokens joining at layer 2
    assert model.sequence_lengths() == [6, 6, 22]
    assert build(head="classification", vocab_size=20).task == "classification"


def test_string_and_int_layer_keys_build_the_same_model():
    torch.manual_seed(0)
    a = build(fusion_spec={"0": ["question"], "1": ["image"]})
    torch.manual_seed(0)
    b = build(fusion_spec={0: ["question"], 1: ["image"]})
    assert a.fusion_spec == b.fusion_spec == {0: ["question"], 1: ["image"]}
    x = {"image": torch.randn(2, 3, 16, 16), "question": torch.randint(3, 20, (2, 6))}
    y = torch.randint(3, 20, (2, 4))
    a.eval(), b.eval()
    torch.testing.assert_close(a(x, y), b(x, y))


def test_heads_and_layers_are_deprecated_spellings_of_num_heads_num_layers():
    x = {"image": torch.randn(2, 3, 16, 16), "question": torch.randint(3, 20, (2, 6))}
    y = torch.randint(3, 20, (2, 4))
    torch.manual_seed(0)
    want = build().eval()
    old = {k: v for k, v in BASE.items() if k not in ("num_layers", "num_heads")}
    torch.manual_seed(0)
    with pytest.warns(DeprecationWarning) as caught:
        got = models.build({**old, "layers": 3, "heads": 2}, input_shapes=SHAPES, num_outputs=20)
    assert sorted(str(w.message).split(" (")[0] for w in caught) == [
        "model.heads: deprecated spelling, use 'num_heads'",
        "model.layers: deprecated spelling, use 'num_layers'",
    ]
    assert got.sequence_lengths() == want.sequence_lengths()
    got.eval()
    torch.testing.assert_close(got(x, y), want(x, y))
    with pytest.raises(ValueError, match=r"both 'layers' \(deprecated\) and 'num_layers'"):
        build(layers=2)


def test_layer_L_is_late_fusion_after_the_last_layer():
    model = build(fusion_spec={"0": ["question"], "3": ["image"]})
    assert model.fusion_spec == {0: ["question"], 3: ["image"]}
    assert model.cfg.fusion_layer("image") == 3
    # no encoder layer processes the 16 image tokens; the decoder reads 6 + 16 tokens
    assert model.sequence_lengths() == [6, 6, 6]


def test_default_fusion_spec_fuses_everything_at_layer_zero():
    model = build()
    assert model.fusion_spec == {0: ["image", "question"]}
    assert model.sequence_lengths() == [22, 22, 22]


def test_omitted_modality_is_not_used():
    model = build(fusion_spec={"0": ["question"]})
    assert model.modalities == ("question",)
    assert list(model.fusion_parameters()) == []


@pytest.mark.parametrize(
    ("kw", "exc", "needles"),
    [
        ({"fusion_spec": {"0": ["question"], "4": ["image"]}}, ValueError,
         ["model.fusion_spec", "layer 4", "num_layers = 3", "0 .. 3", "3 = after the last layer"]),
        ({"fusion_spec": {"-1": ["question"]}}, ValueError, ["fusion_spec", "0 .. 3"]),
        ({"fusion_spec": {"first": ["question"]}}, ValueError, ["fusion_spec", "'first'"]),
        ({"fusion_spec": {"0": ["question", "audio"]}}, ValueError,
         ["fusion_spec", "'audio'", "['image', 'question']"]),
        ({"fusion_spec": {"0": ["question"], "1": ["question"]}}, ValueError,
         ["fusion_spec", "'question'", "twice"]),
        ({"fusion_spec": {"0": "question"}}, TypeError, ["fusion_spec", "list"]),
        ({"fusion_spec": {"1": ["question", "image"]}}, ValueError,
         ["fusion_spec", "layer 0", "[1]"]),
        ({"pooling": "mean", "pooled": {"image": 17}}, ValueError,
         ["pooled.image", "17", "1 .. 16"]),
        ({"pooling": "mean", "pooled": {"image": 0}}, ValueError, ["pooled.image", ">= 1"]),
        ({"pooling": "mean", "pooled": {"audio": 2}}, ValueError, ["pooled", "'audio'"]),
        ({"pooling": "median", "pooled": {"image": 2}}, ValueError,
         ["pooling", "'median'", "attention"]),
        ({"pooling": {"image": "attention"}}, ValueError, ["pooled", "'image'", "attention"]),
        ({"pooled": {"image": 4}}, ValueError, ["pooling", "pooled.image"]),
        ({"tokenizers": {"image": "conv"}}, ValueError, ["tokenizers.image", "'conv'", "patch"]),
        ({"tokenizers": {"question": "patch"}}, ValueError, ["tokenizers.question", "rank"]),
        ({"patch_size": 5}, ValueError, ["patch_size", "'image'"]),
        ({"num_heads": 3}, ValueError, ["num_heads", "d_model = 16"]),
        ({"head": "regression"}, ValueError, ["head", "'regression'", "classification"]),
        ({"trunk": "bert"}, ValueError, ["trunk", "'bert'", "t5"]),
        ({"decoder": "lstm"}, ValueError, ["decoder", "'lstm'", "torch"]),
        ({"decoder_layers": 0}, ValueError, ["decoder_layers", ">= 1"]),
        ({"num_layers": 2.5}, ValueError, ["num_layers", "int", "2.5"]),
        ({"dropout": 1.5}, ValueError, ["dropout", "[0, 1)"]),
        ({"fusion": "late"}, ValueError, ["model.fusion: unknown key", "fusion_spec"]),
        ({"eos_id": 20}, ValueError, ["eos_id", "0 .. 19"]),
        ({"t5": "some/path"}, ValueError, ["model.t5", "trunk"]),
    ],
)  # fmt: skip
def test_build_time_errors_name_the_key_and_allowed_values(kw, exc, needles):
    cfg = dict(kw)
    if cfg.get("t5"):
        cfg["trunk"] = "torch"
    with pytest.raises(exc) as info:
        build(**cfg)
    for needle in needles:
        assert needle in str(info.value), (needle, str(info.value))


def test_classification_with_token_ids_needs_vocab_size():
    with pytest.raises(ValueError, match=r"model\.vocab_size.*'question'"):
        build(head="classification")


def test_unknown_family_and_missing_name_via_registry():
    with pytest.raises(ValueError, match="token_fusion"):
        models.build({"name": "token-fusion"}, input_shapes=SHAPES, num_outputs=3)


def test_per_modality_patch_sizes_tokenize_spectrograms():
    """AV-MNIST shapes: a 28x28 image in 4x4 patches, a 201-bin spectrogram in 67x4 patches."""
    shapes = {"image": (1, 28, 28), "audio": (1, 201, 40)}
    model = build(num_outputs=10, shapes=shapes, head="classification",
                  patch_size={"image": 4, "audio": [67, 4]})  # fmt: skip
    assert model.token_counts == {"image": 49, "audio": 30}
    x = {"image": torch.randn(2, 1, 28, 28), "audio": torch.randn(2, 1, 201, 40)}
    assert model(x).shape == (2, 10)
    with pytest.raises(ValueError, match=r"model\.patch_size\.audio.*'audio'.*divisors of 201"):
        build(shapes=shapes, head="classification", patch_size={"image": 4, "audio": [5, 4]})
    with pytest.raises(ValueError, match=r"model\.patch_size: patch \(4, 4\).*'audio'"):
        build(shapes=shapes, head="classification")
    with pytest.raises(TypeError, match=r"model\.patch_size.*\[height, width\]"):
        build(shapes=shapes, head="classification", patch_size=[1, 2, 3])
