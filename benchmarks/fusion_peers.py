"""Peer-library modules paired with the fuselab operator that computes the same maths.

Used by ``benchmarks/fusion_ops.py`` (its peer worker). Each factory returns a :class:`Pair`: the
peer module, how to call it on the fuselab input dict, the fuselab operator, the inputs, and, where
the parametrisations correspond, ``sync`` which copies the peer's weights into the fuselab operator
so that the worker can check both give the same output before timing them. Peers:

* PyTorch ``nn.Bilinear`` (small widths only: its CPU backward is 15-30x slower at 512 wide);
* MultiBench ``fusions/common_fusions.py`` (not on PyPI: the file is loaded from a local copy of
  the repository, ``--multibench``; never committed here);
* the MulT authors' model (``src/models.py`` + ``modules/``, ``--mult-repo``; likewise);
* TorchMultimodal and fusilli where installed (the comparison venv).

``maths``: ``same`` (outputs checked equal after ``sync``), ``same-flops`` (same products and
shapes, outputs differ by a documented detail), ``superset`` (the peer computes more terms),
``similar`` (same structure, a different nonlinearity).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import torch
from torch import Tensor, nn

import fuselab as fl


@dataclass
class Sizes:
    widths: tuple[int, int]
    out_dim: int
    batch: int
    seq_len: int
    gen: torch.Generator = field(default_factory=lambda: torch.Generator().manual_seed(0))

    def vectors(self, dims: dict[str, int]) -> dict[str, Tensor]:
        return {m: torch.randn(self.batch, d, generator=self.gen) for m, d in dims.items()}

    def sequences(self, dims: dict[str, int]) -> dict[str, Tensor]:
        return {
            m: torch.randn(self.batch, self.seq_len, d, generator=self.gen) for m, d in dims.items()
        }


@dataclass
class Pair:
    peer: str
    peer_module: nn.Module
    call: Callable[[dict[str, Tensor]], Tensor]
    fuselab: str
    ours: nn.Module
    inputs: dict[str, Tensor]
    maths: str
    note: str = ""
    sync: Callable[[], None] | None = None
    peer_tensors: list[Tensor] = field(default_factory=list)  # unregistered trainable tensors


@dataclass
class Context:
    """Where the peers that are not installed packages come from."""

    multibench: ModuleType | None = None
    mult_repo: str | None = None


def load_file(path: str, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _copy(dst: Tensor, src: Tensor) -> None:
    with torch.no_grad():
        dst.copy_(src)


def _dims(s: Sizes) -> dict[str, int]:
    return {"image": s.widths[0], "audio": s.widths[1]}


def _roll_ones_first(w: Tensor, dims: int) -> Tensor:
    """A weight over ``[1; x]`` indices (MultiBench) re-indexed for fuselab's ``[x; 1]``."""
    return w.roll(shifts=(-1,) * dims, dims=tuple(range(w.dim() - dims, w.dim())))


# --------------------------------------------------------------------------- PyTorch itself
def torch_bilinear(s: Sizes, ctx: Context) -> Pair:
    d = _dims(s)
    if d["image"] * d["audio"] > 4096:
        raise LookupError("nn.Bilinear skipped above 4096 input pairs (its CPU backward, "
                          "aten._trilinear, is 15-30x slower)")
    peer = nn.Bilinear(d["image"], d["audio"], s.out_dim)
    ours = fl.fusion.build("bilinear", in_dims=d, out_dim=s.out_dim)
    return Pair("torch nn.Bilinear", peer, lambda x: peer(x["image"], x["audio"]), "bilinear",
                ours, s.vectors(d), "same", sync=lambda: ours.load_state_dict(peer.state_dict()))


# --------------------------------------------------------------------------- MultiBench
def _multibench(ctx: Context) -> ModuleType:
    if ctx.multibench is None:
        raise ImportError("MultiBench fusions file not given (--multibench)")
    return ctx.multibench


def _mi2(s: Sizes, ctx: Context, form: str, fuselab_form: str) -> Pair:
    mb = _multibench(ctx)
    d = _dims(s)
    out = s.out_dim if form == "matrix" else d["audio"]
    peer = mb.MultiplicativeInteractions2Modal([d["image"], d["audio"]], out, form)
    ours = fl.fusion.build("multiplicative", in_dims=d, out_dim=out, form=fuselab_form)

    def sync() -> None:
        di, da = d["image"], d["audio"]
        if form == "matrix":
            w = ours.weight
            _copy(w[:, :di, :da], peer.W.permute(2, 0, 1))
            _copy(w[:, :di, da], peer.U.T)
            _copy(w[:, di, :da], peer.V.T)
            _copy(w[:, di, da], peer.b)
        else:  # vector: W, U (D_c, D_x), V, b (D_x); scalar: W, U (D_c,), V, b (1,)
            _copy(ours.scale_weight, peer.W.T.reshape(-1, di))
            _copy(ours.shift_weight, peer.U.T.reshape(-1, di))
            _copy(ours.scale_bias, peer.V.reshape(-1))
            _copy(ours.shift_bias, peer.b.reshape(-1))

    return Pair(f"MultiBench MultiplicativeInteractions2Modal({form!r})", peer,
                lambda x: peer([x["image"], x["audio"]]), f"multiplicative({fuselab_form})",
                ours, s.vectors(d), "same", sync=sync)


def mb_matrix(s: Sizes, ctx: Context) -> Pair:
    return _mi2(s, ctx, "matrix", "matrix")


def mb_vector(s: Sizes, ctx: Context) -> Pair:
    return _mi2(s, ctx, "vector", "vector")


def mb_scalar(s: Sizes, ctx: Context) -> Pair:
    return _mi2(s, ctx, "scalar", "scalar")


def mb_matrix_vs_bilinear(s: Sizes, ctx: Context) -> Pair:
    pair = _mi2(s, ctx, "matrix", "matrix")
    d = _dims(s)
    pair.ours = fl.fusion.build("bilinear", in_dims=d, out_dim=s.out_dim)
    pair.fuselab, pair.maths, pair.sync = "bilinear", "superset", None
    pair.note = "the peer also computes both linear terms (U c + V x)"
    return pair


def mb_matrix3d(s: Sizes, ctx: Context) -> Pair:
    mb = _multibench(ctx)
    d = {"image": s.widths[0], "audio": s.widths[1], "text": 16}
    inter = s.batch * d["audio"] * d["text"] * s.out_dim
    if inter > 2**26:
        raise LookupError(f"skipped: MultiBench's (B, D_2, D_3, K) hypernetwork output would "
                          f"hold {inter / 2**20:.0f}M values")
    peer = mb.MultiplicativeInteractions3Modal(list(d.values()), s.out_dim, task="affect")
    ours = fl.fusion.build("multiplicative", in_dims=d, out_dim=s.out_dim)

    def sync() -> None:
        a, b = peer.a, peer.b  # a: matrix3D (W, U, V, b), b: matrix (W, U, V, b)
        n1, n2, n3 = d.values()
        w = ours.weight  # (K, n1 + 1, n2 + 1, n3 + 1)
        _copy(w[:, :n1, :n2, :n3], a.W.permute(3, 0, 1, 2))
        _copy(w[:, :n1, n2, :n3], a.U.permute(2, 0, 1))
        _copy(w[:, n1, :n2, :n3], a.V.permute(2, 0, 1))
        _copy(w[:, n1, n2, :n3], a.b.T)
        _copy(w[:, :n1, :n2, n3], b.W.permute(2, 0, 1))
        _copy(w[:, :n1, n2, n3], b.U.T)
        _copy(w[:, n1, :n2, n3], b.V.T)
        _copy(w[:, n1, n2, n3], b.b)

    return Pair("MultiBench MultiplicativeInteractions3Modal(task='affect')", peer,
                lambda x: peer([x["image"], x["audio"], x["text"]]),
                "multiplicative(matrix3D)", ours, s.vectors(d), "same", sync=sync,
                note="third modality 'text' of width 16")


def mb_tensor(s: Sizes, ctx: Context) -> Pair:
    mb = _multibench(ctx)
    d = _dims(s)
    size = (d["image"] + 1) * (d["audio"] + 1)
    peer = nn.Sequential()
    peer.fuse = mb.TensorFusion()
    peer.linear = nn.Linear(size, s.out_dim)
    ours = fl.fusion.build("tensor", in_dims=d, out_dim=s.out_dim)

    def sync() -> None:
        w = peer.linear.weight.view(s.out_dim, d["image"] + 1, d["audio"] + 1)
        _copy(ours.linear.weight, _roll_ones_first(w, 2).reshape(s.out_dim, -1))
        _copy(ours.linear.bias, peer.linear.bias)

    return Pair("MultiBench TensorFusion + nn.Linear", peer,
                lambda x: peer.linear(peer.fuse([x["image"], x["audio"]])), "tensor", ours,
                s.vectors(d), "same", sync=sync)


def mb_lowrank(s: Sizes, ctx: Context) -> Pair:
    mb = _multibench(ctx)
    d = _dims(s)
    peer = mb.LowRankTensorFusion(list(d.values()), s.out_dim, 4)
    ours = fl.fusion.build("lowrank", in_dims=d, out_dim=s.out_dim, rank=4)

    def sync() -> None:
        for m, f in zip(d, peer.factors, strict=True):
            _copy(ours.factors[m], _roll_ones_first(f.transpose(1, 2), 1).transpose(1, 2))
        _copy(ours.fusion_weights, peer.fusion_weights.reshape(-1))
        _copy(ours.bias, peer.fusion_bias.reshape(-1))

    return Pair("MultiBench LowRankTensorFusion(rank 4)", peer,
                lambda x: peer([x["image"], x["audio"]]), "lowrank(rank 4)", ours, s.vectors(d),
                "same", sync=sync, peer_tensors=list(peer.factors),
                note="its factors are plain tensors in a list (not registered parameters)")


def mb_concat(s: Sizes, ctx: Context) -> Pair:
    mb = _multibench(ctx)
    d = _dims(s)
    peer = mb.ConcatWithLinear(sum(d.values()), s.out_dim)
    ours = fl.fusion.build("concat", in_dims=d, out_dim=s.out_dim)
    return Pair("MultiBench ConcatWithLinear", peer, lambda x: peer([x["image"], x["audio"]]),
                "concat", ours, s.vectors(d), "same",
                sync=lambda: ours.proj.load_state_dict(peer.fc.state_dict()))


def mb_nlgate(s: Sizes, ctx: Context) -> Pair:
    mb = _multibench(ctx)
    d, w, t = _dims(s), s.out_dim, s.seq_len
    peer = mb.NLgate(t, w, t, (d["image"], w), (d["audio"], w), (d["audio"], w))
    ours = fl.fusion.build("nlgate", in_dims=d, out_dim=w)
    return Pair("MultiBench NLgate (q/k/v linear)", peer,
                lambda x: peer([x["image"], x["audio"]]), "nlgate", ours, s.sequences(d),
                "same-flops", note=f"T = {t}; MultiBench views K (B, T, d) as (B, d, T) "
                "(a reshape, not a transpose), so outputs differ; same products and shapes")


# --------------------------------------------------------------------------- MulT
def mult_model(s: Sizes, ctx: Context) -> Pair:
    if ctx.mult_repo is None:
        raise ImportError("MulT repository copy not given (--mult-repo)")
    if ctx.mult_repo not in sys.path:
        sys.path.insert(0, ctx.mult_repo)
    import modules.position_embedding as pe  # type: ignore[import-not-found]
    from src.models import MULTModel  # type: ignore[import-not-found]

    if not getattr(pe.make_positions, "contiguous_shim", False):
        # Written for an older torch whose clone() returned contiguous tensors; the positions'
        # .view(-1) fails on today's strided clone. Same values, made contiguous.
        original = pe.make_positions

        def make_positions(*a: Any) -> Tensor:
            return original(*a).contiguous()

        make_positions.contiguous_shim = True  # type: ignore[attr-defined]
        pe.make_positions = make_positions

    d = {"text": s.widths[0], "audio": s.widths[1], "video": 20}
    hp = argparse.Namespace(
        orig_d_l=d["text"], orig_d_a=d["audio"], orig_d_v=d["video"], lonly=True, aonly=True,
        vonly=True, num_heads=5, layers=5, attn_dropout=0.0, attn_dropout_a=0.0,
        attn_dropout_v=0.0, relu_dropout=0.0, res_dropout=0.0, out_dropout=0.0,
        embed_dropout=0.0, attn_mask=False, output_dim=s.out_dim,
    )
    peer = MULTModel(hp)
    ours = fl.fusion.build("mult", in_dims=d, out_dim=s.out_dim)
    short = {"text": "l", "audio": "a", "video": "v"}

    def sync() -> None:
        state = ours.state_dict()
        theirs = peer.state_dict()
        for m, c in short.items():
            state[f"temporal.{m}.weight"] = theirs[f"proj_{c}.weight"]
            for t, ct in short.items():
                if t != m:
                    _encoder(state, theirs, f"cross.{m}_to_{t}", f"trans_{ct}_with_{c}")
            _encoder(state, theirs, f"memory.{m}", f"trans_{c}_mem")
        for ours_key, their_key in (("proj1", "proj1"), ("proj2", "proj2"), ("out", "out_layer")):
            for p in ("weight", "bias"):
                state[f"{ours_key}.{p}"] = theirs[f"{their_key}.{p}"]
        ours.load_state_dict(state)

    return Pair("MulT authors' MULTModel (attn_mask off)", peer,
                lambda x: peer(x["text"], x["audio"], x["video"])[0], "mult", ours,
                s.sequences(d), "same", sync=sync,
                note=f"T = {s.seq_len}, third modality 'video' of width 20; width 30, 5 heads, "
                "5 layers")


def _encoder(state: dict[str, Any], theirs: dict[str, Any], ours: str, their: str) -> None:
    names = {"attn.in_proj_weight": "self_attn.in_proj_weight",
             "attn.in_proj_bias": "self_attn.in_proj_bias",
             "attn.out_proj.weight": "self_attn.out_proj.weight",
             "attn.out_proj.bias": "self_attn.out_proj.bias", "ffn.0.weight": "fc1.weight",
             "ffn.0.bias": "fc1.bias", "ffn.3.weight": "fc2.weight", "ffn.3.bias": "fc2.bias",
             "norm_attn.weight": "layer_norms.0.weight", "norm_attn.bias": "layer_norms.0.bias",
             "norm_ffn.weight": "layer_norms.1.weight", "norm_ffn.bias": "layer_norms.1.bias"}
    i = 0
    while f"{ours}.layers.{i}.norm_ffn.bias" in state:
        for a, b in names.items():
            state[f"{ours}.layers.{i}.{a}"] = theirs[f"{their}.layers.{i}.{b}"]
        i += 1
    state[f"{ours}.norm.weight"] = theirs[f"{their}.layer_norm.weight"]
    state[f"{ours}.norm.bias"] = theirs[f"{their}.layer_norm.bias"]


# --------------------------------------------------------------------------- installed packages
def tmm_concat(s: Sizes, ctx: Context) -> Pair:
    from torchmultimodal.modules.fusions.concat_fusion import ConcatFusionModule

    d = _dims(s)
    peer = ConcatFusionModule(projection=nn.Linear(sum(d.values()), s.out_dim))
    ours = fl.fusion.build("concat", in_dims=d, out_dim=s.out_dim)
    def sync() -> None:  # TorchMultimodal concatenates in sorted-name order: audio, image
        w = peer.projection.weight
        _copy(ours.proj.weight, torch.cat([w[:, d["audio"]:], w[:, : d["audio"]]], dim=1))
        _copy(ours.proj.bias, peer.projection.bias)

    return Pair("TorchMultimodal ConcatFusionModule(+Linear)", peer, peer, "concat", ours,
                s.vectors(d), "same", sync=sync)


def tmm_attention(s: Sizes, ctx: Context) -> Pair:
    from torchmultimodal.modules.fusions.attention_fusion import AttentionFusionModule

    d = _dims(s)
    peer = AttentionFusionModule(d, encoding_projection_dim=s.out_dim)
    ours = fl.fusion.build("gated", in_dims=d, out_dim=s.out_dim, level="modality")
    return Pair("TorchMultimodal AttentionFusionModule", peer, peer, "gated(modality)", ours,
                s.vectors(d), "similar",
                note="modality-level gates from all modalities times per-modality projections; "
                "softmax gates there, sigmoid here")


def tmm_deepset(s: Sizes, ctx: Context) -> Pair:
    from torchmultimodal.modules.fusions.deepset_fusion import DeepsetFusionModule

    d = _dims(s)
    w = min(d.values())
    mlp = nn.Sequential(nn.Linear(w, w), nn.ReLU(), nn.Linear(w, s.out_dim))
    peer = DeepsetFusionModule(d, mlp, torch.sum, use_auto_mapping=True)
    ours = fl.fusion.build("deepset", in_dims=d, out_dim=s.out_dim)

    def sync() -> None:
        ours.proj.load_state_dict(peer.projections.state_dict())
        ours.mlp.load_state_dict(peer.mlp.state_dict())

    return Pair("TorchMultimodal DeepsetFusionModule(sum, auto mapping)", peer, peer,
                "deepset(sum)", ours, s.vectors(d), "same", sync=sync)


def fusilli_concat(s: Sizes, ctx: Context) -> Pair:
    from fusilli.fusionmodels.tabularfusion.concat_data import ConcatTabularData

    d = _dims(s)
    data_dims = {"mod1_dim": d["image"], "mod2_dim": d["audio"], "mod3_dim": None,
                 "img_dim": None}
    peer = ConcatTabularData("regression", data_dims, None)
    peer.fused_layers = nn.Sequential(nn.Linear(sum(d.values()), s.out_dim))
    peer.calc_fused_layers()
    ours = fl.fusion.build("concat", in_dims=d, out_dim=s.out_dim)
    return Pair("fusilli ConcatTabularData(fused_layers=Linear)", peer,
                lambda x: peer(x["image"], x["audio"]), "concat", ours, s.vectors(d), "superset",
                note=f"fusilli adds its Linear({s.out_dim} -> 1) prediction head")


#: Every peer factory, in report order.
PEERS: list[Callable[[Sizes, Context], Pair]] = [
    tmm_concat, mb_concat, fusilli_concat, tmm_attention, tmm_deepset, mb_tensor, mb_lowrank,
    torch_bilinear, mb_matrix_vs_bilinear, mb_matrix, mb_vector, mb_scalar, mb_matrix3d,
    mb_nlgate, mult_model,
]
