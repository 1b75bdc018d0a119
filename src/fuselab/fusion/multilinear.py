"""Multilinear forms ``z_k = Σ W[k, i_1, …, i_M] x_1[i_1] ⋯ x_M[i_M]``, contracted in the cheapest order.

``bilinear``, ``tensor`` and ``multiplicative`` are all this contraction (with ``[x; 1]`` inputs for
the last two). Every order costs the same ``2 N K Π D_m`` multiply-adds in its one large matrix
product; the orders differ in the intermediate they write and read back (forward and again in the
backward pass), and at large widths that memory traffic, not the arithmetic, decides the time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def outer_flat(vectors: Sequence[Tensor]) -> Tensor:
    """Flattened outer product of ``(..., D_m)`` tensors -> ``(..., prod D_m)``, row-major.

    Index ``(i_1, ..., i_M)`` lands at ``i_1 * prod_{m>1} D_m + ... + i_M`` (first modality
    slowest), matching ``torch.einsum`` + ``reshape`` of the full tensor.
    """
    t = vectors[0]
    for v in vectors[1:]:
        t = (t.unsqueeze(-1) * v.unsqueeze(-2)).flatten(-2)
    return t


def split_point(dims: Sequence[int], out_dim: int) -> int:
    """Where :func:`multilinear` splits the modalities: ``s`` leading ones form the prefix.

    With the weight stored ``(K, D_1, …, D_M)``, contracting a trailing group (the suffix) first
    needs no copy of the weight: ``W.view(K·P, S)`` is contiguous (``P``/``S``: products of the
    prefix/suffix widths). The suffix's outer product ``(N, S)`` times ``W.view(K·P, S)ᵀ`` gives
    ``(N, K, P)``, which one batched product with the prefix's outer product ``(N, P)`` reduces to
    ``(N, K)``. Intermediates per sample: ``S + K·P + P`` (``s ≥ 1``) or ``S + K`` for ``s = 0``
    (the whole outer product, one GEMM, as the Tensor Fusion Network computes it). We pick the
    split with the fewest, e.g. ``(512, 512) -> 64``: ``s = 1`` keeps ``512 + 64·512 + 512``
    values per sample, 8x fewer than the ``262,208`` of the outer product (which MultiBench's
    ``TensorFusion`` and a flattened ``nn.Linear`` write); ``(64, 32) -> 128``: ``s = 0``,
    ``2,176`` values instead of ``8,256``.
    """
    def cost(s: int) -> int:
        p, q = math.prod(dims[:s]), math.prod(dims[s:])
        return q + out_dim if s == 0 else q + out_dim * p + p

    return min(range(len(dims)), key=cost)


def multilinear(xs: Sequence[Tensor], weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``z[..., k] = Σ_{i_1…i_M} weight[k, i_1, …, i_M] Π_m xs[m][..., i_m] (+ bias[k])``.

    Args:
        xs: ``M`` tensors ``(..., D_m)`` with the same leading dims.
        weight: ``(K, D_1, …, D_M)``, contiguous.
        bias: optional ``(K,)``, added inside the last product (``addmm``/``baddbmm``).

    Returns:
        ``(..., K)``. The contraction order is :func:`split_point`'s, chosen from the shapes only
        (so ``torch.compile`` sees one static graph per shape).
    """
    lead = xs[0].shape[:-1]
    flat = [x.reshape(-1, x.shape[-1]) for x in xs]
    k, dims = weight.shape[0], [x.shape[-1] for x in flat]
    s = split_point(dims, k)
    suffix = outer_flat(flat[s:])
    if s == 0:
        return F.linear(suffix, weight.reshape(k, -1), bias).reshape(*lead, k)
    p = math.prod(dims[:s])
    t = F.linear(suffix, weight.reshape(k * p, -1)).view(-1, k, p)
    prefix = outer_flat(flat[:s]).unsqueeze(-1)
    if bias is None:
        z = torch.bmm(t, prefix)
    else:
        z = torch.baddbmm(bias.view(1, k, 1).expand(t.shape[0], k, 1), t, prefix)
    return z.reshape(*lead, k)
