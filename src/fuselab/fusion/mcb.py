"""Multimodal Compact Bilinear pooling (Fukui et al. 2016): count sketch + FFT."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from fuselab.fusion.base import FusionOp
from fuselab.fusion.registry import register


def count_sketch_matrix(in_dim: int, out_dim: int, generator: torch.Generator) -> Tensor:
    """Dense ``(in_dim, out_dim)`` count-sketch matrix: row ``i`` has ``s(i) = ±1`` at ``h(i)``."""
    h = torch.randint(out_dim, (in_dim,), generator=generator)
    s = torch.randint(2, (in_dim,), generator=generator) * 2 - 1
    mat = torch.zeros(in_dim, out_dim)
    mat[torch.arange(in_dim), h] = s.float()
    return mat


@register("mcb")
class CompactBilinearFusion(FusionOp):
    """Compact bilinear pooling ``z = IFFT(prod_m FFT(Ψ_m(x_m)))``, a sketch of ``⊗_m x_m``.

    ``Ψ_m`` is a fixed random count sketch to ``out_dim`` bins (hash ``h_m``, signs ``s_m``).
    The circular convolution of the sketches equals the count sketch of the full outer product
    with hash ``sum_m h_m(i_m) mod d`` and sign ``prod_m s_m(i_m)``, so ``z`` approximates the
    bilinear (outer-product) features in ``d = out_dim`` dimensions without forming them.
    No trainable parameters; the sketches are buffers (saved in ``state_dict``).

    Args:
        in_dims: ``{modality: D_m}``.
        out_dim: sketch dimension ``d``.
        seed: seed of the random hashes and signs.

    Shapes:
        ``{m: (B, D_m)}`` -> ``(B, out_dim)``; ``{m: (B, T, D_m)}`` -> ``(B, T, out_dim)``.
        ``self.sketch_<m>``: ``(D_m, out_dim)``.
    """

    def __init__(self, in_dims: Mapping[str, int], out_dim: int, seed: int = 0) -> None:
        super().__init__(in_dims, out_dim)
        gen = torch.Generator().manual_seed(seed)
        for i, d in enumerate(in_dims.values()):
            # Buffers are addressed by position: modality names need not be valid identifiers.
            self.register_buffer(f"sketch_{i}", count_sketch_matrix(d, out_dim, gen))

    def sketch(self, name: str) -> Tensor:
        """The count-sketch matrix ``(D_m, out_dim)`` of modality ``name``."""
        return getattr(self, f"sketch_{self.modalities.index(name)}")

    def forward(self, inputs: Mapping[str, Tensor]) -> Tensor:
        self.check_inputs(inputs)
        first = inputs[self.modalities[0]]
        if first.shape[0] == 0:  # the FFT backends reject empty transforms
            return first.new_zeros((*first.shape[:-1], self.out_dim))
        # torch.fft has no half-precision CPU kernels: (b)float16 inputs (autocast) use float32.
        work = torch.promote_types(first.dtype, torch.float32)
        spec: Tensor | None = None
        for m in self.modalities:
            x = inputs[m].to(work)
            f = torch.fft.rfft(x @ self.sketch(m).to(work), n=self.out_dim, dim=-1)
            spec = f if spec is None else spec * f
        assert spec is not None
        return torch.fft.irfft(spec, n=self.out_dim, dim=-1).to(first.dtype)
