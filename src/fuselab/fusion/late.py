"""Decision-level (late) fusion of per-modality logits."""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fuselab.fusion.base import FusionOp
from fuselab.fusion.registry import register

MODES = ("mean", "weighted", "product", "vote", "multiplicative")


@register("late")
class LateFusion(FusionOp):
    """Late fusion of per-modality class logits ``{m: (B, K)} -> (B, K)``.

    Modes (the output is always a ``(B, K)`` score whose argmax is the fused decision):

    * ``mean``: ``mean_m l_m``.
    * ``weighted``: ``sum_m w_m l_m`` with learned ``w = softmax(a)`` (starts as the mean).
    * ``product``: product of probabilities, returned as normalised log-probabilities
      ``log_softmax(sum_m log_softmax(l_m))``.
    * ``vote``: majority vote for inference: per class the number of modalities whose argmax it
      is, plus the mean probability (< 1, so it only breaks ties between equal counts).
    * ``multiplicative``: the multiplicative combination layer of Liu et al. 2018 (a baseline in
      MSAF). Train with :meth:`loss`, which down-weights the loss of modality ``m`` on a sample
      by ``prod_{j != m} (1 - p_j^y)^(beta / (M - 1))`` so that a modality already confident in
      the right class lets the others off; ``forward`` returns the log of the mean probability.

    Args:
        in_dims: ``{modality: K}``: every modality gives logits over the same ``K`` classes.
        out_dim: ``K``.
        mode: one of ``MODES``.
        beta: down-weighting exponent of ``multiplicative`` (0 gives the plain sum of losses).

    Shapes:
        ``{m: (B, K)}`` -> ``(B, K)``; ``{m: (B, T, K)}`` -> ``(B, T, K)``.
    """

    def __init__(
        self, in_dims: Mapping[str, int], out_dim: int, mode: str = "mean", beta: float = 1.0
    ) -> None:
        super().__init__(in_dims, out_dim)
        for m, d in in_dims.items():
            if d != out_dim:
                raise ValueError(
                    f"LateFusion: in_dims[{m!r}] must equal out_dim={out_dim} (the number of "
                    f"classes), got {d}"
                )
        if mode not in MODES:
            raise ValueError(f"LateFusion: mode must be one of {MODES}, got {mode!r}")
        if beta < 0:
            raise ValueError(f"LateFusion: beta must be >= 0, got {beta!r}")
        self.mode = mode
        self.beta = float(beta)
        self.weight_logits = nn.Parameter(torch.zeros(len(in_dims))) if mode == "weighted" else None

    @classmethod
    def example_kwargs(cls, in_dims: Mapping[str, int], out_dim: int) -> dict[str, object]:
        """Build arguments for ``describe``: every modality gives ``out_dim`` logits."""
        return {"in_dims": {m: out_dim for m in in_dims}, "out_dim": out_dim}

    def modality_weights(self) -> Tensor:
        """The learned weights ``(M,)`` of ``weighted`` mode (uniform for the other modes)."""
        if self.weight_logits is None:
            n = len(self.modalities)
            return torch.full((n,), 1.0 / n)
        return torch.softmax(self.weight_logits, dim=0)

    def forward(self, inputs: Mapping[str, Tensor]) -> Tensor:
        self.check_inputs(inputs)
        logits = torch.stack([inputs[m] for m in self.modalities], dim=0)  # (M, ..., K)
        if self.mode == "mean":
            return logits.mean(dim=0)
        if self.mode == "weighted":
            w = self.modality_weights().to(logits.dtype)
            return torch.einsum("m,m...->...", w, logits)
        if self.mode == "product":
            return torch.log_softmax(torch.log_softmax(logits, dim=-1).sum(dim=0), dim=-1)
        probs = torch.softmax(logits, dim=-1)
        if self.mode == "vote":
            votes = F.one_hot(logits.argmax(dim=-1), self.out_dim).sum(dim=0)
            return votes.to(logits.dtype) + probs.mean(dim=0)
        return torch.log(probs.mean(dim=0))

    def loss(self, inputs: Mapping[str, Tensor], target: Tensor) -> Tensor:
        """Mean multiplicative-combination loss (Liu et al. 2018) for class indices ``target``.

        ``L = -sum_m prod_{j != m} (1 - p_j^y)^(beta / (M - 1)) log p_m^y``, averaged over the batch.
        ``target``: ``(B,)`` (or ``(B, T)`` for sequences) int64 class indices.
        """
        self.check_inputs(inputs)
        if target.dtype != torch.long:
            raise TypeError(f"LateFusion.loss: target must be int64 class ids, got {target.dtype}")
        logp = torch.stack(
            [torch.log_softmax(inputs[m], dim=-1) for m in self.modalities], dim=0
        ).gather(
            -1, target.unsqueeze(0).unsqueeze(-1).expand(len(self.modalities), *target.shape, 1)
        )
        logp = logp.squeeze(-1)  # (M, B[, T]): log p_m^y
        n = len(self.modalities)
        if n == 1:
            return -logp[0].mean()
        log_rest = torch.log1p(-logp.exp().clamp(max=1 - 1e-7))  # log(1 - p_j^y)
        # sum over j != m of log(1 - p_j^y), then the beta/(M-1) power as a scale in log space.
        others = log_rest.sum(dim=0, keepdim=True) - log_rest
        weights = torch.exp(others * (self.beta / (n - 1)))
        return -(weights * logp).sum(dim=0).mean()
