"""Per-modality tokenizers: one modality's batch -> ``(B, n, d_model)`` tokens + ``(B, n)`` padding mask.

* :class:`EmbeddingTokenizer`: integer token ids ``(B, L)`` (``L <=`` declared length); ids equal
  to ``pad_id`` are padding.
* :class:`PatchTokenizer`: images / spectrograms ``(B, C, H, W)`` -> ``(H/ph)(W/pw)`` patch tokens
  (ViT-style conv patch embedding).
* :class:`LinearTokenizer`: feature sequences ``(B, T, D)`` (``T <=`` declared) or vectors
  ``(B, D)`` (one token) -> linear projection.
* :class:`ViTTokenizer`: images through a ``transformers.ViTModel`` (CLS token dropped, as the
  thesis's 196 tokens of a 224x224 image), projected to ``d_model`` when widths differ.

Tokenizers validate their input and raise ``TypeError``/``ValueError`` naming the modality, the
expected and the received value.
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch
from torch import Tensor, nn


class Tokenizer(nn.Module):
    """Base: ``num_tokens`` (tokens per sample before pooling) and optional learned positions."""

    def __init__(self, name: str, num_tokens: int, dim: int, positions: bool) -> None:
        super().__init__()
        self.name = name
        self.num_tokens = num_tokens
        self.pos = nn.Parameter(torch.randn(num_tokens, dim) * 0.02) if positions else None

    def _where(self) -> str:
        return f"token_fusion: modality {self.name!r}"

    def _add_positions(self, tokens: Tensor) -> Tensor:
        if self.pos is None:
            return tokens
        return tokens + self.pos[: tokens.shape[1]]


class EmbeddingTokenizer(Tokenizer):
    """Integer ids ``(B, L)`` -> ``(B, L, d)``; ``embedding`` may be shared (T5's token table)."""

    def __init__(
        self,
        name: str,
        length: int,
        vocab_size: int,
        dim: int,
        pad_id: int,
        positions: bool,
        embedding: nn.Embedding | None = None,
    ) -> None:
        super().__init__(name, length, dim, positions)
        self.embed = embedding if embedding is not None else nn.Embedding(vocab_size, dim)
        self.vocab_size = int(self.embed.num_embeddings)
        self.pad_id = pad_id

    def forward(self, ids: Tensor) -> tuple[Tensor, Tensor]:
        """``ids`` (B, L) integer -> tokens (B, L, d), padding mask (B, L)."""
        if not isinstance(ids, Tensor) or ids.is_floating_point() or ids.dtype == torch.bool:
            got = ids.dtype if isinstance(ids, Tensor) else type(ids).__name__
            raise TypeError(f"{self._where()}: expected integer token ids (int64), got {got}")
        if ids.dim() != 2 or ids.shape[1] > self.num_tokens or ids.shape[1] == 0:
            raise ValueError(
                f"{self._where()}: expected token ids of shape (B, L) with 1 <= L <= "
                f"{self.num_tokens}, got {tuple(ids.shape)}"
            )
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.vocab_size):
            raise ValueError(
                f"{self._where()}: token ids must lie in 0 .. {self.vocab_size - 1}, got range "
                f"{int(ids.min())} .. {int(ids.max())}"
            )
        return self._add_positions(self.embed(ids)), ids == self.pad_id


class PatchTokenizer(Tokenizer):
    """Images ``(B, C, H, W)`` -> ``(B, (H/ph)(W/pw), d)`` via a stride-``patch`` convolution."""

    def __init__(
        self, name: str, shape: tuple[int, ...], patch: tuple[int, int], dim: int, positions: bool
    ) -> None:
        c, h, w = shape
        super().__init__(name, (h // patch[0]) * (w // patch[1]), dim, positions)
        self.shape = tuple(shape)
        self.proj = nn.Conv2d(c, dim, kernel_size=patch, stride=patch)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``x`` (B, C, H, W) float -> tokens (B, n, d), padding mask (B, n) all False."""
        check_image(x, self.shape, self._where())
        tokens = self.proj(x).flatten(2).transpose(1, 2)
        mask = torch.zeros(tokens.shape[:2], dtype=torch.bool, device=x.device)
        return self._add_positions(tokens), mask


class LinearTokenizer(Tokenizer):
    """Feature sequences ``(B, T, D)`` or vectors ``(B, D)`` -> ``(B, T or 1, d)``."""

    def __init__(self, name: str, shape: tuple[int, ...], dim: int, positions: bool) -> None:
        length = shape[0] if len(shape) == 2 else 1
        super().__init__(name, length, dim, positions)
        self.shape = tuple(shape)
        self.proj = nn.Linear(shape[-1], dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``x`` (B, T, D) or (B, D) float -> tokens (B, T or 1, d), padding mask all False."""
        if not isinstance(x, Tensor) or not x.is_floating_point():
            got = x.dtype if isinstance(x, Tensor) else type(x).__name__
            raise TypeError(f"{self._where()}: expected a floating-point tensor, got {got}")
        want = "(B, T, D)" if len(self.shape) == 2 else "(B, D)"
        if (
            x.dim() != len(self.shape) + 1
            or x.shape[-1] != self.shape[-1]
            or (x.dim() == 3 and not 1 <= x.shape[1] <= self.num_tokens)
        ):
            raise ValueError(
                f"{self._where()}: expected shape {want} with D = {self.shape[-1]}"
                + (f", T <= {self.num_tokens}" if x.dim() == 3 else "")
                + f", got {tuple(x.shape)}"
            )
        seq = x if x.dim() == 3 else x.unsqueeze(1)
        mask = torch.zeros(seq.shape[:2], dtype=torch.bool, device=x.device)
        return self._add_positions(self.proj(seq)), mask


class ViTTokenizer(Tokenizer):
    """Images ``(B, C, H, W)`` through ``transformers.ViTModel`` -> ``(B, P, d)`` patch tokens.

    Args:
        vit: a ``transformers.ViTModel``; its ``config.image_size`` must match the images.
        frozen: run it under ``no_grad`` with ``requires_grad`` off (its outputs are then fixed
            features, which is what :class:`fuselab.data.FeatureCache` stores).
        cache: optional :class:`fuselab.data.FeatureCache` (frozen ViT only). Each image's id is
            the blake2b digest of its bytes, so no sample ids need to reach the model and a noisy
            copy of an image is (correctly) a different entry; the encoder key hashes the ViT's
            weights and is recomputed after ``load_state_dict``.
    """

    def __init__(
        self,
        name: str,
        shape: tuple[int, ...],
        vit: Any,
        dim: int,
        frozen: bool,
        cache: Any | None = None,
    ) -> None:
        cfg = vit.config
        size, patch = int(cfg.image_size), int(cfg.patch_size)
        want = (int(cfg.num_channels), size, size)
        if tuple(shape) != want:
            raise ValueError(
                f"model.vit: modality {name!r} has per-sample shape {tuple(shape)}, but the ViT "
                f"expects {want} (its image_size / num_channels)"
            )
        super().__init__(name, (size // patch) ** 2, dim, positions=False)
        self.shape = want
        self.vit: Any = vit
        self.frozen = frozen
        if frozen:
            self.vit.requires_grad_(False)
        hidden = int(cfg.hidden_size)
        self.proj: nn.Module = nn.Linear(hidden, dim) if hidden != dim else nn.Identity()
        if cache is not None and not frozen:
            raise ValueError(
                f"model.vit_cache: modality {name!r}: only a frozen ViT's outputs can be cached; "
                f"set freeze_vit = true or remove vit_cache"
            )
        self.cache = cache
        self._key: str | None = None
        self.register_load_state_dict_post_hook(_forget_key)

    def patch_tokens(self, x: Tensor) -> Tensor:
        """The ViT's patch tokens ``(B, P, hidden)`` (CLS dropped), before the projection."""
        out: Tensor = self.vit(pixel_values=x).last_hidden_state[:, 1:]
        return out

    def cache_key(self) -> str:
        """The feature-cache key of the current ViT weights."""
        if self._key is None:
            from fuselab.data.feature_cache import encoder_key  # only needed with a cache

            self._key = encoder_key(self.vit, name="vit-patch-tokens")
        return self._key

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``x`` (B, C, H, W) float -> tokens (B, P, d), padding mask (B, P) all False."""
        check_image(x, self.shape, self._where())
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            if self.frozen:
                self.vit.eval()  # a frozen feature extractor never uses dropout
            if self.cache is not None:
                ids = [image_id(img) for img in x.detach().cpu().contiguous()]
                hidden = self.cache.encode(self.patch_tokens, x, ids, key=self.cache_key())
                hidden = hidden.to(x.dtype)
            else:
                hidden = self.patch_tokens(x)
        tokens = self.proj(hidden)
        mask = torch.zeros(tokens.shape[:2], dtype=torch.bool, device=x.device)
        return tokens, mask


def image_id(img: Tensor) -> str:
    """Content id of one image for the feature cache: blake2b of its dtype, shape and bytes."""
    h = hashlib.blake2b(f"{img.dtype}{tuple(img.shape)}".encode(), digest_size=16)
    h.update(img.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _forget_key(module: Any, _incompatible: Any) -> None:
    # New weights mean new features: the next forward recomputes the cache key.
    module._key = None


def check_image(x: Tensor, shape: tuple[int, ...], where: str) -> None:
    """``TypeError``/``ValueError`` unless ``x`` is a float ``(B, *shape)`` batch."""
    if not isinstance(x, Tensor) or not x.is_floating_point():
        got = x.dtype if isinstance(x, Tensor) else type(x).__name__
        raise TypeError(f"{where}: expected a floating-point image batch, got {got}")
    if tuple(x.shape[1:]) != tuple(shape) or x.dim() != len(shape) + 1:
        raise ValueError(
            f"{where}: expected images of shape (B, {', '.join(map(str, shape))}), "
            f"got {tuple(x.shape)}"
        )
