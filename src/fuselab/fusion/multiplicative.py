"""Multiplicative interactions (Jayakumar et al. 2020; MultiBench ``MultiplicativeInteractions``)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fuselab.fusion.base import FusionOp
from fuselab.fusion.multilinear import multilinear, outer_flat
from fuselab.fusion.options import role_modality
from fuselab.fusion.registry import register
from fuselab.fusion.tensor import append_one

FORMS = {2: ("matrix", "vector", "scalar"), 3: ("matrix3D",)}


@register("multiplicative")
class MultiplicativeFusion(FusionOp):
    """A hypernetwork of the context modalities computes the weights applied to the target ``x``.

    Two modalities, context ``c`` and target ``x`` (``D_x`` features):

    * ``matrix``: ``z = x W(c) + b(c)`` with ``W(c) = W ×₁ c + V`` ``(D_x, K)`` and
      ``b(c) = U c + b``: every product ``c_n x_m`` plus both linear terms, i.e. tensor fusion of
      the two modalities with the hypernetwork's parametrisation.
    * ``vector`` (diagonal form, gating): ``z = w(c) ⊙ x + b(c)``, ``w, b: R^{D_c} -> R^{D_x}``
      affine; ``out_dim`` must equal ``D_x``.
    * ``scalar`` (scales and biases): ``z = s(c) x + t(c)``, ``s, t`` scalar, affine in ``c``;
      ``out_dim`` must equal ``D_x``.

    Three modalities (``matrix3D``, MultiBench's ``MultiplicativeInteractions3Modal``): contexts
    ``c_1, c_2`` generate ``W(c_1, c_2)`` ``(D_x, K)`` and ``b(c_1, c_2)``, each bilinear-plus-
    linear in the contexts (the ``matrix3D`` and ``matrix`` forms), and ``z = x W + b``: all
    eight products of ``{c_1, 1} × {c_2, 1} × {x, 1}``, i.e. three-way tensor fusion.

    ``matrix``/``matrix3D`` keep one weight ``(K, D_c + 1, D_x + 1)`` / ``(K, D_c1 + 1, D_c2 + 1,
    D_x + 1)`` in which the trailing index ``D + 1`` stands for the constant 1: ``weight[:, :D_c,
    :D_x]`` is ``W``, ``weight[:, :D_c, D_x]`` is ``U``, ``weight[:, D_c, :D_x]`` is ``V`` and
    ``weight[:, D_c, D_x]`` is ``b``. The forward pass never materialises ``W(c)`` per sample (as
    MultiBench does, ``B·D_x·K`` values) unless that is the cheapest order:
    :func:`~fuselab.fusion.multilinear.multilinear` chooses by shape. Initialisation (the paper
    gives none; MultiBench uses Xavier-normal blocks and a N(0, 1) bias): ``nn.Linear``'s for
    the flattened weight, as ``tensor``; ``vector``/``scalar``: ``nn.Linear``'s for the affine
    maps ``w`` (or ``s``), parameters ``scale_weight`` ``(D_x or 1, D_c)`` and ``scale_bias``, and
    ``b`` (or ``t``), ``shift_weight`` and ``shift_bias``.

    Args:
        in_dims: ``{modality: D_m}``, two or three modalities.
        out_dim: ``K``.
        form: ``matrix`` (default for two), ``vector``, ``scalar``; ``matrix3D`` (three).
        target: the modality the generated weights act on (default: the last declared).

    Shapes:
        ``{m: (B, D_m)}`` -> ``(B, out_dim)``; ``{m: (B, T, D_m)}`` -> ``(B, T, out_dim)``.
        :meth:`hypernetwork` (matrix forms): ``W(c)`` ``(B, D_x, K)`` and ``b(c)`` ``(B, K)``.
    """

    def __init__(
        self,
        in_dims: Mapping[str, int],
        out_dim: int,
        form: str | None = None,
        target: str | None = None,
    ) -> None:
        super().__init__(in_dims, out_dim)
        where = "MultiplicativeFusion"
        n = len(in_dims)
        if n not in FORMS:
            raise ValueError(f"{where}: needs 2 or 3 modalities, got {n}: {sorted(in_dims)}")
        form = FORMS[n][0] if form is None else form
        if form not in FORMS[n]:
            hint = " (matrix3D needs three modalities)" if form == "matrix3D" else ""
            raise ValueError(
                f"{where}: form for {n} modalities must be one of {list(FORMS[n])}, "
                f"got {form!r}{hint}"
            )
        target = role_modality(where, in_dims, "target", target, self.modalities[-1])
        d_x = in_dims[target]
        if form in ("vector", "scalar") and out_dim != d_x:
            raise ValueError(
                f"{where}: the {form} form outputs the target's width: out_dim must equal "
                f"in_dims[{target!r}] = {d_x}, got {out_dim}"
            )
        self.form, self.target = form, target
        self.contexts = tuple(m for m in self.modalities if m != target)
        if form in ("vector", "scalar"):
            # Two maps, not one to [scale; shift]: the halves of one output would be strided and
            # its backward would concatenate their gradients (measured 1.18x slower at 512 wide).
            # Plain parameters, not nn.Linear submodules: two fewer module calls (~10 us of a
            # 0.2 ms call at (64, 32), measured).
            width, d_c = (d_x if form == "vector" else 1), in_dims[self.contexts[0]]
            bound = 1.0 / math.sqrt(d_c)  # nn.Linear's initialisation

            def init(*shape: int) -> nn.Parameter:
                return nn.Parameter(torch.empty(*shape).uniform_(-bound, bound))

            self.scale_weight, self.scale_bias = init(width, d_c), init(width)
            self.shift_weight, self.shift_bias = init(width, d_c), init(width)
        else:
            sizes = [in_dims[m] + 1 for m in (*self.contexts, target)]
            bound = 1.0 / math.sqrt(math.prod(sizes))
            self.weight = nn.Parameter(torch.empty(out_dim, *sizes).uniform_(-bound, bound))

    def hypernetwork(self, inputs: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        """``W(c)`` ``(..., D_x, K)`` and ``b(c)`` ``(..., K)`` of the matrix forms."""
        if self.form in ("vector", "scalar"):
            raise ValueError(f"MultiplicativeFusion: hypernetwork() is for the matrix forms, "
                             f"this operator has form {self.form!r}")
        self.check_inputs(inputs)
        c = outer_flat([append_one(inputs[m]) for m in self.contexts])
        generated = torch.einsum("...n,knx->...xk", c, self.weight.flatten(1, -2))
        return generated[..., :-1, :], generated[..., -1, :]

    def forward(self, inputs: Mapping[str, Tensor]) -> Tensor:
        self.check_inputs(inputs)
        x = inputs[self.target]
        if self.form in ("vector", "scalar"):
            c = inputs[self.contexts[0]]
            # Multiply then add, not addcmul, whose backward also scales by its `value` (two more
            # elementwise passes; measured 5 us of 0.2 ms at (64, 32)).
            scale = F.linear(c, self.scale_weight, self.scale_bias)
            return scale * x + F.linear(c, self.shift_weight, self.shift_bias)
        xs = [append_one(inputs[m]) for m in (*self.contexts, self.target)]
        return multilinear(xs, self.weight)
