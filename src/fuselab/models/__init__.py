"""Models: *where* modalities meet — staged encoders + fusion plans, C-LSTM, token fusion, Pro-Fusion.

    model = fuselab.models.build({"name": "staged", ...}, input_shapes=ds.shapes, num_outputs=10)
"""

from fuselab.models import transformer  # noqa: F401  (registers "token_fusion")
from fuselab.models.registry import MODELS, build, register_model

__all__ = ["MODELS", "build", "register_model"]
