"""Hugging Face pieces: a T5 trunk/decoder and a ViT image tokenizer, pretrained or random.

Pretrained models load with ``from_pretrained(path_or_name)`` (a local directory, or a hub name
when the machine may download); random ones are built from ``T5Config`` / ``ViTConfig`` of the
configured sizes, which is what the tests use (no network).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from torch import nn

if TYPE_CHECKING:
    from transformers import T5Config, T5EncoderModel, ViTModel


def _hf(name: str) -> Any:
    """``transformers.<name>``, imported on first use: random configs need no Hugging Face."""
    try:
        module = importlib.import_module("transformers")
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(
            "the T5/ViT options of the token-fusion model need Hugging Face transformers: "
            "pip install 'fuselab[hf]'"
        ) from err
    return getattr(module, name)


def _load(cls: Any, key: str, path_or_name: str) -> Any:
    try:
        return cls.from_pretrained(path_or_name)
    except (OSError, ValueError) as err:
        raise ValueError(
            f"model.{key}: could not load {cls.__name__} from {path_or_name!r} (a local directory "
            f"saved with save_pretrained, or a hub name available offline): {err}"
        ) from err


def t5_config(
    *, vocab_size: int, d_model: int, num_layers: int, num_heads: int, ff_dim: int, dropout: float
) -> T5Config:
    """A random-init T5 config of the given sizes (ReLU feed-forward, as T5 v1.0)."""
    return _hf("T5Config")(
        vocab_size=vocab_size,
        d_model=d_model,
        d_kv=d_model // num_heads,
        d_ff=ff_dim,
        num_layers=num_layers,
        num_decoder_layers=num_layers,
        num_heads=num_heads,
        dropout_rate=dropout,
        feed_forward_proj="relu",
    )


def t5_encoder(path_or_name: str | None, config: T5Config | None) -> T5EncoderModel:
    """``T5EncoderModel.from_pretrained(path_or_name)``, or a random one from ``config``."""
    if path_or_name is not None:
        model = _load(_hf("T5EncoderModel"), "t5", path_or_name)
    else:
        assert config is not None
        model = _hf("T5EncoderModel")(config)
    model.config._attn_implementation = "eager"  # T5's relative position bias needs eager attention
    return model


def t5_decoder(
    path_or_name: str | None, config: T5Config | None, num_layers: int
) -> tuple[nn.Module, nn.Linear, float]:
    """``(decoder T5Stack, lm_head, output scale)`` with the first ``num_layers`` blocks.

    The scale is ``d_model ** -0.5`` for tied word embeddings (T5 v1.0 scales the decoder output
    before its tied LM head), else 1.
    """
    if path_or_name is not None:
        full = _load(_hf("T5ForConditionalGeneration"), "t5", path_or_name)
        decoder, head, cfg = full.decoder, full.lm_head, full.config
        if num_layers > len(decoder.block):
            raise ValueError(
                f"model.decoder_layers: the pretrained T5 {path_or_name!r} has "
                f"{len(decoder.block)} decoder blocks; allowed: 1 .. {len(decoder.block)}, "
                f"got {num_layers}"
            )
        decoder.block = nn.ModuleList(list(decoder.block)[:num_layers])
    else:
        assert config is not None
        cfg = _hf("T5Config")(**{**config.to_dict(), "num_decoder_layers": num_layers})
        full = _hf("T5ForConditionalGeneration")(cfg)
        decoder, head = full.decoder, full.lm_head
    decoder.config._attn_implementation = "eager"
    scale = cfg.d_model**-0.5 if cfg.tie_word_embeddings else 1.0
    return decoder, head, scale


def vit_model(path_or_name: str | None, overrides: dict[str, Any]) -> ViTModel:
    """``ViTModel.from_pretrained(path_or_name)`` or a random ``ViTModel(ViTConfig(**overrides))``."""
    if path_or_name is not None:
        return _load(_hf("ViTModel"), "vit", path_or_name)
    try:
        cfg = _hf("ViTConfig")(**overrides)
    except TypeError as err:
        raise ValueError(
            f"model.vit_config: invalid ViTConfig arguments {overrides}: {err}"
        ) from err
    return _hf("ViTModel")(cfg, add_pooling_layer=False)
