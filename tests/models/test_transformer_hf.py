"""Hugging Face trunks: T5 encoder blocks, T5 decoder, ViT tokenizer (tiny random, no network)."""

from __future__ import annotations

import pytest
import torch
from transformers import T5Config, T5EncoderModel, T5ForConditionalGeneration, ViTConfig, ViTModel

import fuselab.models as models
from fuselab.models.transformer import TokenFusionTransformer
from fuselab.models.transformer.decoder import T5Decoder

V = 32
# T5 conventions: pad = decoder start = 0, eos = 1
IDS = {"pad_id": 0, "bos_id": 0, "eos_id": 1}


def tiny_t5(num_layers: int = 3) -> T5Config:
    return T5Config(vocab_size=V, d_model=16, d_kv=8, d_ff=32, num_layers=num_layers,
                    num_decoder_layers=2, num_heads=2, dropout_rate=0.0,
                    decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)  # fmt: skip


@pytest.fixture(scope="module")
def t5_dir(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("t5")
    T5ForConditionalGeneration(tiny_t5()).eval().save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def vit_dir(tmp_path_factory):
    torch.manual_seed(0)
    cfg = ViTConfig(image_size=16, patch_size=4, num_channels=3, hidden_size=24, num_hidden_layers=1,
                    num_attention_heads=2, intermediate_size=32)  # fmt: skip
    path = tmp_path_factory.mktemp("vit")
    ViTModel(cfg, add_pooling_layer=False).save_pretrained(path)
    return path


def build(shapes, num_outputs=V, **kw) -> TokenFusionTransformer:
    torch.manual_seed(0)
    model = models.build({"name": "token_fusion", **IDS, **kw}, input_shapes=shapes,
                         num_outputs=num_outputs)  # fmt: skip
    assert isinstance(model, TokenFusionTransformer)
    return model


def question(gen, b=3, n=6):
    q = torch.randint(2, V, (b, n), generator=gen)
    q[0, 4:] = 0  # padding
    return q


def test_pretrained_t5_end_to_end_equals_t5_for_conditional_generation(gen, t5_dir):
    """Text-only fusion at layer 0 with no extra embeddings is exactly T5: encoder, masks,
    relative positions, the decoder and its scaled tied LM head."""
    model = build({"question": (6,)}, trunk="t5", t5=str(t5_dir), decoder="t5",
                  decoder_layers=2, type_embeddings=False).eval()  # fmt: skip
    assert model.tokenizers["question"].pos is None  # T5 text has relative positions only
    assert model.cfg.num_layers == 3 and model.cfg.d_model == 16  # read from the checkpoint
    ref = T5ForConditionalGeneration.from_pretrained(t5_dir).eval()
    q = question(gen)
    labels = torch.randint(2, V, (3, 4), generator=gen)
    want = ref(input_ids=q, attention_mask=(q != 0).long(), labels=labels).logits
    torch.testing.assert_close(model({"question": q}, labels), want)
    enc = T5EncoderModel.from_pretrained(t5_dir).eval()
    memory, pad = model.encode({"question": q})
    want_mem = enc(input_ids=q, attention_mask=(q != 0).long()).last_hidden_state
    torch.testing.assert_close(memory[~pad], want_mem[~pad])


def test_t5_trunk_fuses_mid_stack_and_recomputes_position_bias(gen, t5_dir):
    shapes = {"question": (6,), "image": (3, 8, 8)}
    model = build(shapes, trunk="t5", t5=str(t5_dir), fusion_spec={"0": ["question"],
                  "2": ["image"]}, patch_size=4, type_embeddings=False,
                  position_embeddings=False).eval()  # fmt: skip
    enc = T5EncoderModel.from_pretrained(t5_dir).eval()
    q = question(gen)
    x = {"question": q, "image": torch.randn(3, 3, 8, 8, generator=gen)}
    outs: list[torch.Tensor] = []
    hooks = [b.register_forward_hook(lambda _m, _i, o: outs.append(o[0])) for b in model.trunk.blocks]
    model.encode(x)
    for h in hooks:
        h.remove()
    assert [o.shape[1] for o in outs] == [6, 6, 10]
    # the first two blocks run on the question alone, exactly as the text-only T5 encoder would
    ref_outs: list[torch.Tensor] = []
    hooks = [b.register_forward_hook(lambda _m, _i, o: ref_outs.append(o[0])) for b in enc.encoder.block]
    enc(input_ids=q, attention_mask=(q != 0).long())
    for h in hooks:
        h.remove()
    valid = q != 0
    for i in range(2):
        torch.testing.assert_close(outs[i][valid], ref_outs[i][valid])
    assert not torch.allclose(outs[2][:, :6][valid], ref_outs[2][valid])


def test_t5_late_fusion_keeps_the_text_encoder_exact_and_only_normalises_the_image(gen, t5_dir):
    """Thesis configuration "fusion at layer 12" of a 12-layer T5, here layer 3 of 3: the question
    part of the memory is the text-only T5 encoder's output, the image tokens get only T5's final
    RMS norm."""
    shapes = {"question": (6,), "image": (3, 8, 8)}
    model = build(shapes, trunk="t5", t5=str(t5_dir), fusion_spec={"0": ["question"],
                  "3": ["image"]}, patch_size=4, type_embeddings=False).eval()  # fmt: skip
    enc = T5EncoderModel.from_pretrained(t5_dir).eval()
    q = question(gen)
    x = {"question": q, "image": torch.randn(3, 3, 8, 8, generator=gen)}
    memory, pad = model.encode(x)
    assert memory.shape == (3, 10, 16) and not pad[:, 6:].any()
    valid = q != 0
    want = enc(input_ids=q, attention_mask=valid.long()).last_hidden_state
    torch.testing.assert_close(memory[:, :6][valid], want[valid])
    image_tokens = model.tokens(x)["image"][0]
    torch.testing.assert_close(memory[:, 6:], enc.encoder.final_layer_norm(image_tokens))


def test_random_t5_trunk_and_decoder_train(gen):
    shapes = {"question": (6,), "image": (3, 8, 8)}
    model = build(shapes, trunk="t5", decoder="t5", num_layers=2, d_model=16, num_heads=2,
                  ff_dim=32, decoder_layers=1, fusion_spec={"0": ["question"], "1": ["image"]},
                  pooling="attention", pooled={"image": 2})  # fmt: skip
    assert len(model.decoder.stack.block) == 1
    x = {"question": question(gen), "image": torch.randn(3, 3, 8, 8, generator=gen)}
    labels = torch.randint(2, V, (3, 3), generator=gen)
    model(x, labels).logsumexp(-1).mean().backward()
    assert model.tokenizers["image"].proj.weight.grad is not None
    assert model.trunk.blocks[0].layer[0].SelfAttention.q.weight.grad is not None
    assert model.generate(x, 4).shape == (3, 4)


def test_frozen_pretrained_trunk_gets_no_gradients(gen, t5_dir):
    model = build({"question": (6,)}, trunk="t5", t5=str(t5_dir), freeze_trunk=True,
                  decoder_layers=1)  # fmt: skip
    q = question(gen)
    model({"question": q}, torch.randint(2, V, (3, 2), generator=gen)).sum().backward()
    assert all(p.grad is None for p in model.trunk.parameters())
    assert isinstance(model.decoder, T5Decoder)  # a pretrained T5 brings its decoder by default
    assert len(model.decoder.stack.block) == 1
    assert model.decoder.stack.block[0].layer[0].SelfAttention.q.weight.grad is not None


def test_t5_config_mismatch_and_bad_path_are_build_errors(t5_dir, tmp_path):
    with pytest.raises(ValueError, match=r"model\.num_layers.*3"):
        build({"question": (6,)}, trunk="t5", t5=str(t5_dir), num_layers=4)
    with pytest.raises(ValueError, match=r"model\.fusion_spec.*0 \.\. 3 \(3 = after the last"):
        build({"question": (6,), "image": (3, 8, 8)}, t5=str(t5_dir),
              fusion_spec={"0": ["question"], "4": ["image"]})  # fmt: skip
    with pytest.raises(ValueError, match=r"model\.decoder_layers.*1 \.\. 2"):
        build({"question": (6,)}, t5=str(t5_dir), decoder="t5", decoder_layers=3)
    with pytest.raises(ValueError, match=r"model\.t5"):
        build({"question": (6,)}, t5=str(tmp_path / "missing"))
    with pytest.raises(ValueError, match=r"model\.t5: .*32 tokens.*40"):
        build({"question": (6,)}, num_outputs=40, t5=str(t5_dir))
    # a padded LM head (more rows than the tokenizer's vocabulary) is cut to num_outputs
    small = build({"question": (6,)}, num_outputs=30, t5=str(t5_dir), decoder_layers=1)
    q = torch.randint(2, 30, (2, 6))
    assert small({"question": q}, torch.randint(2, 30, (2, 3))).shape == (2, 3, 30)


def test_vit_tokenizer_loaded_by_path_frozen(gen, vit_dir):
    shapes = {"question": (6,), "image": (3, 16, 16)}
    model = build(shapes, d_model=16, num_heads=2, num_layers=2, decoder_layers=1,
                  tokenizers={"image": "vit"}, vit=str(vit_dir),
                  fusion_spec={"0": ["question"], "1": ["image"]})  # fmt: skip
    assert model.token_counts["image"] == 16  # (16 / 4)^2 patches, CLS dropped
    images = torch.randn(3, 3, 16, 16, generator=gen)
    tok = model.tokenizers["image"]
    ref = ViTModel.from_pretrained(vit_dir).eval()
    tokens, pad = tok(images)
    with torch.no_grad():
        want = tok.proj(ref(pixel_values=images).last_hidden_state[:, 1:])
    torch.testing.assert_close(tokens, want)
    assert not pad.any()
    x = {"question": question(gen), "image": images}
    model.train()(x, torch.randint(2, V, (3, 2), generator=gen)).sum().backward()
    assert all(p.grad is None for p in tok.vit.parameters())
    assert tok.proj.weight.grad is not None
    with pytest.raises(ValueError, match=r"model\.pooled\.image.*1 \.\. 16"):
        build(shapes, d_model=16, num_heads=2, tokenizers={"image": "vit"}, vit=str(vit_dir),
              pooling="mean", pooled={"image": 17})  # fmt: skip
    with pytest.raises(ValueError, match=r"model\.vit.*\(3, 16, 16\)"):
        build({"question": (6,), "image": (3, 8, 8)}, d_model=16, num_heads=2,
              tokenizers={"image": "vit"}, vit=str(vit_dir))  # fmt: skip


def test_fine_tuned_random_vit_gets_gradients(gen):
    model = build({"image": (3, 8, 8)}, d_model=16, num_heads=2, num_layers=1, decoder_layers=1,
                  tokenizers={"image": "vit"}, freeze_vit=False,
                  vit_config={"image_size": 8, "patch_size": 4, "hidden_size": 16,
                              "num_hidden_layers": 1, "num_attention_heads": 2,
                              "intermediate_size": 16})  # fmt: skip
    x = {"image": torch.randn(2, 3, 8, 8, generator=gen)}
    model(x, torch.randint(2, V, (2, 2), generator=gen)).sum().backward()
    vit = model.tokenizers["image"].vit
    assert all(p.grad is not None for p in vit.layers.parameters())
    assert vit.embeddings.patch_embeddings.projection.weight.grad is not None


def test_frozen_vit_outputs_go_through_the_feature_cache(gen, vit_dir, tmp_path):
    shapes = {"question": (6,), "image": (3, 16, 16)}
    kw = dict(d_model=16, num_heads=2, num_layers=2, decoder_layers=1, vit=str(vit_dir),
              tokenizers={"image": "vit"}, fusion_spec={"0": ["question"], "1": ["image"]})
    cached = build(shapes, vit_cache=str(tmp_path / "vit.sqlite"), **kw).eval()
    plain = build(shapes, **kw).eval()
    x = {"question": question(gen), "image": torch.randn(3, 3, 16, 16, generator=gen)}
    labels = torch.randint(2, V, (3, 2), generator=gen)
    tok = cached.tokenizers["image"]
    stats = tok.cache.stats
    first = cached(x, labels)
    assert (stats["hits"], stats["misses"]) == (0, 3)
    calls = []
    hook = tok.vit.register_forward_hook(lambda *_: calls.append(1))
    second = cached(x, labels)
    assert (stats["hits"], stats["misses"]) == (3, 3) and not calls  # ViT not run again
    torch.testing.assert_close(first, second)
    torch.testing.assert_close(first, plain(x, labels))
    noisy = {**x, "image": x["image"] + 0.1}  # a noisy copy is a different entry
    cached(noisy, labels)
    assert stats["misses"] == 6 and len(calls) == 1
    hook.remove()
    key = tok.cache_key()
    state = {k: v + 1 if k.startswith("tokenizers.image.vit.") else v
             for k, v in cached.state_dict().items()}  # fmt: skip
    cached.load_state_dict(state)
    assert tok.cache_key() != key  # new weights, new cache entries
    with pytest.raises(ValueError, match=r"model\.vit_cache.*freeze_vit"):
        build(shapes, vit_cache=str(tmp_path / "v.sqlite"), freeze_vit=False, **kw)
    with pytest.raises(ValueError, match=r"model\.vit_cache.*'vit'"):
        build(shapes, vit_cache=str(tmp_path / "v.sqlite"), num_layers=2)
