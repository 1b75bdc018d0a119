"""End to end on the synthetic VQA task: data.load -> models.build -> train.fit -> exact match."""

from __future__ import annotations

import torch

import fuselab.data as data
import fuselab.models as models


def vqa_splits(train: int = 192, **options):
    return data.load_splits("vqa", sizes={"train": train, "val": 64, "test": 8}, image_size=16,
                            **options)  # fmt: skip


def model_for(ds, **kw):
    meta = ds.meta
    cfg = {"name": "token_fusion", "num_layers": 2, "d_model": 32, "num_heads": 2, "ff_dim": 64,
           "decoder_layers": 1, "dropout": 0.0, "fusion_spec": {"0": ["question"], "1": ["image"]},
           "pooling": "attention", "pooled": {"image": 4},
           "pad_id": meta["pad_id"], "bos_id": meta["bos_id"], "eos_id": meta["eos_id"], **kw}  # fmt: skip
    torch.manual_seed(0)
    return models.build(cfg, input_shapes=ds.shapes, num_outputs=ds.num_classes)


def test_builds_from_dataset_shapes_and_meta():
    splits = vqa_splits()
    train = splits["train"]
    model = model_for(train)
    assert model.modalities == ("question", "image")
    x, y = next(train.batches(8))
    logits = model(x, y)
    assert logits.shape == (*y.shape, train.num_classes)
    out = model.generate(x, int(y.shape[1]))
    assert out.shape == y.shape and int(out.max()) < train.num_classes


def test_fit_learns_text_answerable_questions():
    from fuselab.train import TrainConfig, fit

    splits = vqa_splits(question_types=("corners",))
    model = model_for(splits["train"])
    cfg = TrainConfig(epochs=12, batch_size=32, lr=3e-3, progress=False, threads=1)
    result = fit(model, splits["train"], splits["val"], cfg, progress=False)
    # "how many corners does a square have ?" -> "four": the question alone fixes the answer
    assert result.best["exact_match"] >= 0.9, result.best


def test_image_fused_at_the_last_layer_answers_colour_questions_text_alone_cannot():
    from fuselab.train import TrainConfig, fit

    splits = vqa_splits(train=512, question_types=("colour",), max_shapes=1)
    cfg = TrainConfig(epochs=8, batch_size=32, lr=3e-3, progress=False, threads=1)
    fused = fit(model_for(splits["train"], pooling="mean"), splits["train"], splits["val"], cfg,
                progress=False)  # fmt: skip
    text_only = model_for(splits["train"], fusion_spec={"0": ["question"]}, pooling="none",
                          pooled={})  # fmt: skip
    assert text_only.modalities == ("question",)
    blind = fit(text_only, splits["train"], splits["val"], cfg, progress=False)
    # four colours: the question alone is at chance (~0.25); the fused image answers it
    assert fused.best["exact_match"] >= 0.9, fused.best
    assert blind.best["exact_match"] <= 0.5, blind.best
