"""Token-fusion transformer: where tokens join, masks, causal decoding, generation, cost."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

import fuselab.models as models
from fuselab.evaluate.cost import flops_per_sample
from fuselab.models.transformer import TokenFusionTransformer

V = 24  # vocabulary; ids 0/1/2 are pad/bos/eos
SHAPES = {"image": (3, 16, 16), "question": (6,)}


def build(shapes=SHAPES, num_outputs: int = V, **kw) -> TokenFusionTransformer:
    cfg = {"name": "token_fusion", "num_layers": 3, "d_model": 16, "num_heads": 2,
           "ff_dim": 32, "decoder_layers": 1, "dropout": 0.0, **kw}  # fmt: skip
    torch.manual_seed(0)
    model = models.build(cfg, input_shapes=shapes, num_outputs=num_outputs)
    assert isinstance(model, TokenFusionTransformer)
    return model


def batch(gen, b: int = 3, q_len: int = 6) -> dict[str, torch.Tensor]:
    return {
        "image": torch.randn(b, 3, 16, 16, generator=gen),
        "question": torch.randint(3, V, (b, q_len), generator=gen),
    }


def layer_outputs(model: TokenFusionTransformer, inputs) -> list[torch.Tensor]:
    outs: list[torch.Tensor] = []
    layers = model.trunk.layers
    hooks = [m.register_forward_hook(lambda _m, _i, o: outs.append(o)) for m in layers]
    try:
        model.encode(inputs)
    finally:
        for h in hooks:
            h.remove()
    return outs


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_image_tokens_join_exactly_at_their_fusion_layer(gen, k):
    spec = {"0": ["question", "image"]} if k == 0 else {"0": ["question"], str(k): ["image"]}
    model = build(fusion_spec=spec, pooling="mean", pooled={"image": 4}).eval()
    x = batch(gen)
    other = {**x, "image": torch.randn(3, 3, 16, 16, generator=gen)}
    a, b = layer_outputs(model, x), layer_outputs(model, other)
    assert [o.shape[1] for o in a] == model.sequence_lengths() == [6] * k + [10] * (3 - k)
    for i in range(3):
        if i < k:  # layers before the fusion layer never see the image
            torch.testing.assert_close(a[i], b[i])
        else:
            assert not torch.allclose(a[i][:, :6], b[i][:, :6])


def test_late_fusion_appends_unprocessed_tokens_after_the_last_layer(gen):
    """Layer L = 3: the image's one pooled token passes through no encoder layer. By hand it is
    LayerNorm(W . mean patch + b) (the patch projection is linear, so projecting the mean patch
    equals the mean of the projected patches); the question part is the trunk's output on the
    question alone."""
    shapes = {"image": (3, 8, 8), "question": (6,)}
    model = build(shapes=shapes, fusion_spec={"0": ["question"], "3": ["image"]}, pooling="mean",
                  pooled={"image": 1}, position_embeddings=False, type_embeddings=False).eval()
    x = {"image": torch.randn(2, 3, 8, 8, generator=gen),
         "question": torch.randint(3, V, (2, 6), generator=gen)}  # fmt: skip
    memory, pad = model.encode(x)
    assert memory.shape == (2, 7, 16) and not pad.any()
    patches = x["image"].unfold(2, 4, 4).unfold(3, 4, 4)  # (B, C, 2, 2, 4, 4)
    conv = model.tokenizers["image"].proj
    token = torch.einsum("dchw,bchw->bd", conv.weight, patches.mean(dim=(2, 3))) + conv.bias
    torch.testing.assert_close(memory[:, 6], F.layer_norm(token, (16,)))
    q, q_pad = model.tokens(x)["question"]
    h = q
    for i in range(3):
        h = model.trunk.layer(i, h, q_pad)
    torch.testing.assert_close(memory, model.trunk.finish(torch.cat([h, token[:, None]], dim=1)))
    # fusing at L - 1 instead lets the last layer mix image and question: a different memory
    mid = build(shapes=shapes, fusion_spec={"0": ["question"], "2": ["image"]}, pooling="mean",
                pooled={"image": 1}, position_embeddings=False, type_embeddings=False).eval()
    assert not torch.allclose(mid.encode(x)[0][:, :6], memory[:, :6])


def test_padding_tokens_change_nothing(gen):
    for head in ("generation", "classification"):
        model = build(fusion_spec={"0": ["question"], "1": ["image"]}, head=head, vocab_size=V)
        model.eval()
        short = batch(gen, q_len=4)
        padded = {**short, "question": F.pad(short["question"], (0, 2), value=model.pad_id)}
        labels = torch.randint(3, V, (3, 5), generator=gen)
        args = (labels,) if head == "generation" else ()
        torch.testing.assert_close(model(padded, *args), model(short, *args))
        mem_short, _ = model.encode(short)
        mem_pad, pad = model.encode(padded)
        assert pad[:, 4:6].all() and not pad[:, :4].any()
        torch.testing.assert_close(mem_pad[:, :4], mem_short[:, :4])
        torch.testing.assert_close(mem_pad[:, 6:], mem_short[:, 4:])


def test_teacher_forcing_is_causal_and_shifted(gen):
    model = build(fusion_spec={"0": ["question"], "1": ["image"]}).eval()
    x = batch(gen)
    labels = torch.randint(3, V, (3, 6), generator=gen)
    logits = model(x, labels)
    assert logits.shape == (3, 6, V)
    changed = labels.clone()
    changed[:, 3] = (labels[:, 3] + 1 - 3) % (V - 3) + 3
    other = model(x, changed)
    # logits[:, t] predicts labels[:, t] from labels[:, :t]: position 3 cannot see labels[:, 3]
    torch.testing.assert_close(other[:, :4], logits[:, :4])
    assert not torch.allclose(other[:, 4:], logits[:, 4:])


def test_generate_matches_teacher_forced_argmax_and_pads_after_eos(gen):
    model = build(fusion_spec={"0": ["question"], "2": ["image"]})
    # make eos likely at some step so the padding rule is exercised
    with torch.no_grad():
        model.decoder.out.bias[model.eos_id] += 2.0
    model.train()
    x = batch(gen, b=4)
    out = model.generate(x, max_len=7)
    assert model.training, "generate restores the training flag"
    assert out.shape == (4, 7) and out.dtype == torch.long
    model.eval()
    pred = model(x, out).argmax(-1)
    saw_eos = False
    for row_out, row_pred in zip(out.tolist(), pred.tolist(), strict=True):
        end = row_out.index(model.eos_id) + 1 if model.eos_id in row_out else len(row_out)
        saw_eos |= end < len(row_out)
        assert row_pred[:end] == row_out[:end]
        assert all(t == model.pad_id for t in row_out[end:])
    assert saw_eos


def test_learns_an_answer_that_only_the_image_holds(gen):
    """VQA-style: the answer word is the image's class; fusion at the last layer must carry it."""
    shapes = {"image": (3, 8, 8), "question": (2,)}
    model = build(shapes=shapes, fusion_spec={"0": ["question"], "2": ["image"]},
                  pooling="attention", pooled={"image": 2})  # fmt: skip
    n, classes = 16, 4
    cls = torch.arange(n) % classes
    templates = torch.randn(classes, 3, 8, 8, generator=gen)
    x = {
        "image": templates[cls] + 0.3 * torch.randn(n, 3, 8, 8, generator=gen),
        "question": torch.full((n, 2), 5, dtype=torch.long),
    }
    labels = torch.stack([cls + 10, torch.full((n,), model.eos_id)], dim=1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(40):
        loss = F.cross_entropy(model(x, labels).flatten(0, 1), labels.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
    out = model.generate(x, max_len=3)
    assert (out[:, :2] == labels).all(dim=1).float().mean() >= 0.9
    assert (out[:, 2] == model.pad_id).all()


def train_flops(model, x, y) -> int:
    with FlopCounterMode(display=False) as counter:
        model(x, y).sum().backward()
    return counter.get_total_flops()


def test_flops_fall_linearly_with_later_fusion_and_with_stronger_pooling(gen):
    x, y = batch(gen, b=2), torch.randint(3, V, (2, 4), generator=gen)
    models_by_layer = [
        build(fusion_spec={"0": ["question"], str(k): ["image"]} if k else None)
        for k in (0, 1, 2, 3)
    ]
    flops = [train_flops(m, x, y) for m in models_by_layer]
    # each layer costs f(n); moving the image one layer later saves f(22) - f(6) every time,
    # also from L - 1 to L (after the last layer the decoder still reads all 22 tokens)
    assert flops[0] > flops[1] > flops[2] > flops[3]
    assert flops[0] - flops[1] == flops[1] - flops[2] == flops[2] - flops[3]
    forward = [flops_per_sample(m, x, y) for m in models_by_layer]  # what `cost` records
    assert forward == sorted(forward, reverse=True) and len(set(forward)) == 4
    pooled = [
        train_flops(build(pooling="mean", pooled={"image": p}) if p < 16 else build(), x, y)
        for p in (16, 4, 1)
    ]
    assert pooled[0] > pooled[1] > pooled[2]


def test_fusion_parameters_are_the_layers_that_see_two_modalities():
    def count(model):
        return sum(p.numel() for p in model.fusion_parameters())

    per_layer = sum(p.numel() for p in build().trunk.layers[0].parameters())
    counts = [count(build(fusion_spec={"0": ["question"], str(k): ["image"]})) for k in (1, 2)]
    assert counts[0] - counts[1] == per_layer
    early = build()
    assert count(early) == 3 * per_layer + early.type_embed.weight.numel()
    # late fusion (layer L = 3): no trunk layer sees both modalities, only the type embeddings
    late = build(fusion_spec={"0": ["question"], "3": ["image"]})
    assert count(late) == late.type_embed.weight.numel()
    ids = {id(p) for p in early.parameters()}
    assert all(id(p) in ids for p in early.fusion_parameters())


def test_classification_head_gives_class_logits(gen):
    model = build(head="classification", vocab_size=V, num_outputs=5)
    out = model(batch(gen))
    assert out.shape == (3, 5)
    out.sum().backward()
    assert model.tokenizers["image"].proj.weight.grad is not None


def test_feature_sequence_and_vector_modalities(gen):
    shapes = {"audio": (7, 5), "pose": (9,), "question": (6,)}
    model = build(shapes=shapes, fusion_spec={"0": ["question", "pose"], "1": ["audio"]},
                  pooling="max", pooled={"audio": 3}, tokenizers={"pose": "linear"})  # fmt: skip
    assert model.token_counts == {"question": 6, "pose": 1, "audio": 3}
    assert model.sequence_lengths() == [7, 10, 10]
    x = {"audio": torch.randn(2, 7, 5, generator=gen), "pose": torch.randn(2, 9, generator=gen),
         "question": torch.randint(3, V, (2, 6), generator=gen)}  # fmt: skip
    assert model(x, torch.randint(3, V, (2, 3), generator=gen)).shape == (2, 3, V)


@pytest.mark.parametrize(
    ("change", "exc", "needles"),
    [
        (lambda x: x.pop("image"), ValueError, ["missing modality 'image'"]),
        (lambda x: x.update(question=x["question"].float()), TypeError, ["'question'", "int"]),
        (lambda x: x.update(question=torch.full((3, 6), V)), ValueError, ["'question'", "0 .. 23"]),
        (lambda x: x.update(question=torch.ones(3, 9, dtype=torch.long)), ValueError,
         ["'question'", "L <= 6", "(3, 9)"]),
        (lambda x: x.update(image=torch.randn(3, 3, 8, 8)), ValueError,
         ["'image'", "(B, 3, 16, 16)", "(3, 3, 8, 8)"]),
        (lambda x: x.update(image=torch.randn(2, 3, 16, 16)), ValueError, ["batch size"]),
    ],
)  # fmt: skip
def test_bad_inputs_raise_clear_errors(gen, change, exc, needles):
    model = build()
    x = batch(gen)
    change(x)
    with pytest.raises(exc) as info:
        model(x, torch.randint(3, V, (3, 4)))
    for needle in needles:
        assert needle in str(info.value), (needle, str(info.value))


def test_bad_labels_and_generate_arguments(gen):
    model = build()
    x = batch(gen)
    with pytest.raises(TypeError, match="needs labels"):
        model(x)
    with pytest.raises(ValueError, match=r"0 \.\. 23"):
        model(x, torch.full((3, 2), V))
    with pytest.raises(ValueError, match="3 samples"):
        model(x, torch.ones(2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="max_len"):
        model.generate(x, 0)
    extra = {**x, "audio": torch.randn(3, 4)}  # names the model does not use are ignored
    assert model.generate(extra, 2).shape == (3, 2)


def test_allow_missing_drops_a_modality_exactly(gen):
    """Without the image, the model is the question-only model with the same weights."""
    both = build(fusion_spec={"0": ["question"], "1": ["image"]}, allow_missing=True).eval()
    assert both.supports_missing_modalities and not build().supports_missing_modalities
    text = build(fusion_spec={"0": ["question"]}).eval()
    state = {k: v for k, v in both.state_dict().items() if not k.startswith("tokenizers.image.")}
    state["type_embed.weight"] = state["type_embed.weight"][:1]  # question is type 0 in both
    text.load_state_dict(state)
    x = batch(gen)
    labels = torch.randint(3, V, (3, 4), generator=gen)
    torch.testing.assert_close(both({"question": x["question"]}, labels), text(x, labels))
    assert not torch.allclose(both(x, labels), text(x, labels))
    # dropping the layer-0 modality: the image enters at layer 1, layer 0 has nothing to do
    mem, pad = both.encode({"image": x["image"]})
    assert mem.shape == (3, 16, 16) and not pad.any()
    with pytest.raises(ValueError, match="none of the model's modalities"):
        both({"audio": torch.randn(3, 2)}, labels)
