"""Token-fusion transformer (thesis 004): modality tokens injected at chosen encoder layers.

    model = fuselab.models.build(
        {"name": "token_fusion", "fusion_spec": {"0": ["question"], "2": ["image"]},
         "pooling": "attention", "pooled": {"image": 4}, "decoder_layers": 2},
        input_shapes={"image": (3, 32, 32), "question": (12,)}, num_outputs=vocab_size)

Config schema and tensor conventions: docs/transformer.md.
"""

from fuselab.models.transformer.config import TokenFusionConfig, parse_config
from fuselab.models.transformer.factory import build_token_fusion
from fuselab.models.transformer.model import TokenFusionTransformer
from fuselab.models.transformer.pooling import TokenPool

__all__ = [
    "TokenFusionConfig",
    "TokenFusionTransformer",
    "TokenPool",
    "build_token_fusion",
    "parse_config",
]
