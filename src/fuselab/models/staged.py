"""The ``staged`` model family: one staged encoder per modality + a fusion plan + a head.

    model = StagedModel(
        encoders={"image": {"preset": "avmnist_image"}, "audio": {"preset": "avmnist_audio"}},
        plan=[{"at": "late", "operator": "concat"}],
        input_shapes={"image": (1, 28, 28), "audio": (1, 201, 40)}, num_outputs=10)
    model({"image": (B, 1, 28, 28), "audio": (B, 1, 201, 40)})   # (B, 10)

Late-style plans (merge at ``late`` / ``decision`` or with ``adapter = "pool"``) build a
:class:`LateStagedModel`, which also exposes ``unimodal_features`` / ``feature_dims`` / ``fuse`` /
``predict`` (gradient blending, probes, Pro-Fusion). See ``docs/models.md`` for the config schema.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, cast

import torch
from torch import Tensor, nn

from fuselab._validate import choice
from fuselab.models.encoders import StagedEncoder, build_encoder, encoder_stage_names
from fuselab.models.head import MLPHead, parse_head
from fuselab.models.inputs import checked_inputs
from fuselab.models.merge import FeatureMapPoint, PositionMerge, build_operator, vector_out_dim
from fuselab.models.plan import FusionPoint, drop_modalities, parse_plan, stage_index
from fuselab.models.shapes import Readout, Shape, default_readout

#: ``{modality: (stage count, fn)}``: ``fn`` maps the branch tensor before that stage runs.
Inject = Mapping[str, tuple[int, Callable[[Tensor], Tensor]]]


def _check_inputs(encoders: Any, input_shapes: Mapping[str, tuple[int, ...]],
                  drop: Sequence[str], drop_mode: str, where: str) -> None:
    if not isinstance(encoders, Mapping) or not encoders:
        raise ValueError(f"{where}.encoders: expected a table modality -> encoder table, "
                         f"got {encoders!r}")
    for m in encoders:
        if m not in input_shapes:
            raise ValueError(f"{where}.encoders.{m}: modality {m!r} is not an input; "
                             f"available: {sorted(input_shapes)}")
    choice(drop_mode, f"{where}.drop_mode", ("remove", "mask"))
    if isinstance(drop, str) or not all(m in encoders for m in drop):
        raise ValueError(f"{where}.drop: expected a list of modalities from {list(encoders)}, "
                         f"got {drop!r}")
    if len(set(drop)) >= len(encoders):
        raise ValueError(f"{where}.drop: cannot drop every modality ({list(encoders)})")


class StagedModel(nn.Module):
    """Staged encoders + fusion plan + head: ``{m: (B, *input_shapes[m])} -> (B, num_outputs)``.

    Args:
        encoders: ``{modality: encoder table}`` (``type``/``preset`` + type keys).
        plan: the fusion points (``docs/models.md``).
        input_shapes: per-sample input shapes; must cover every encoder's modality.
        num_outputs: output width.
        head: ``{"hidden": [...], "dropout": p}``.
        drop: modalities removed (``drop_mode = "remove"``) or zeroed (``"mask"``).
        widen: ``{m: (i, k)}``: stage ``i`` of ``m`` gets ``k`` extra input channels (Pro-Fusion).
    """

    def __init__(
        self,
        encoders: Mapping[str, Mapping[str, Any]],
        plan: Sequence[Mapping[str, Any]],
        *,
        input_shapes: Mapping[str, tuple[int, ...]],
        num_outputs: int,
        head: Mapping[str, Any] | None = None,
        drop: Sequence[str] = (),
        drop_mode: str = "remove",
        widen: Mapping[str, tuple[int, int]] | None = None,
        where: str = "model",
    ) -> None:
        super().__init__()
        self._args = dict(encoders=encoders, plan=plan, input_shapes=input_shapes,
                          num_outputs=num_outputs, head=head, drop=drop, drop_mode=drop_mode,
                          where=where)
        _check_inputs(encoders, input_shapes, drop, drop_mode, where)
        names = {m: encoder_stage_names(c, f"{where}.encoders.{m}") for m, c in encoders.items()}
        fm, merge = parse_plan(plan, names, f"{where}.fusion")
        self.masked = tuple(drop) if drop_mode == "mask" else ()
        active = [m for m in encoders if drop_mode == "mask" or m not in drop]
        if drop_mode == "remove":
            fm, merge = drop_modalities(fm, merge, active)
        self.plan, self.merge_point = fm, merge
        self._modalities = tuple(active)
        self.input_shapes = {m: tuple(int(d) for d in input_shapes[m]) for m in active}
        self.num_outputs = num_outputs
        widen = dict(widen or {})
        self.late_style = merge.level in ("late", "decision") or merge.adapter == "pool"
        self.encoders = nn.ModuleDict()
        for m in active:
            stop = None if merge.level != "stage" else merge.stages[m]
            self.encoders[m] = build_encoder(encoders[m], self.input_shapes[m],
                                             where=f"{where}.encoders.{m}", stop=stop,
                                             widen=widen.get(m))
        self.fm_ops = nn.ModuleList(
            FeatureMapPoint(p.operator, {m: self._shape(m, k) for m, k in p.stages.items()},
                            p.options, p.where)
            for p in fm
        )
        hidden, dropout = parse_head(head, f"{where}.head")
        self.trunk: StagedEncoder | None = None
        self.merger: nn.Module
        if self.late_style:
            self._build_vector_merge(merge, active, hidden, dropout)
        else:
            self._build_trunk(merge, active, names, encoders, hidden, dropout, where)

    def _build_vector_merge(self, merge: FusionPoint, active: list[str], hidden: list[int],
                            dropout: float) -> None:
        """Late / decision / pooled-stage fusion: readouts to vectors, a vector operator, a head."""
        num_outputs = self.num_outputs
        if merge.level == "stage":  # adapter "pool": vectors at stage k
            self.readouts = nn.ModuleDict({
                m: Readout(self._shape(m, k), default_readout(self._shape(m, k).kind))
                for m, k in merge.stages.items()})
        else:
            self.readouts = nn.ModuleDict({m: self._enc(m).readout for m in active})
        self.feature_dims = {m: cast(Readout, r).out_dim for m, r in self.readouts.items()}
        if merge.level == "decision":
            self.heads = nn.ModuleDict({
                m: MLPHead(d, hidden, num_outputs, dropout) for m, d in self.feature_dims.items()
            })
            in_dims = dict.fromkeys(active, num_outputs)
            opts = {**merge.options, "out_dim": num_outputs}
        else:
            in_dims = dict(self.feature_dims)
            opts = {**merge.options, "out_dim": vector_out_dim(merge.operator, in_dims,
                                                               merge.options)}
        self.merger = build_operator(merge.operator, merge.where, in_dims=in_dims, **opts)
        self.fused_dim = int(opts["out_dim"])
        self.head: nn.Module = (nn.Identity() if merge.level == "decision" else
                                MLPHead(self.fused_dim, hidden, num_outputs, dropout))

    def _build_trunk(self, merge: FusionPoint, active: list[str], names: Mapping[str, Sequence[str]],
                     encoders: Mapping[str, Mapping[str, Any]], hidden: list[int],
                     dropout: float, where: str) -> None:
        """Stage fusion: merge per position, then the rest of the trunk modality's encoder."""
        trunk = merge.trunk or max(active, key=lambda m: (len(names[m]), -active.index(m)))
        shapes = {m: self._shape(m, k) for m, k in merge.stages.items()}
        pm = PositionMerge(merge.operator, shapes, shapes[trunk], merge.adapter,
                           merge.options, merge.where)
        self.merger = pm
        self.trunk_modality = trunk
        self.trunk = build_encoder(encoders[trunk], None, where=f"{where}.encoders.{trunk}",
                                   start=merge.stages[trunk], in_shape=pm.out_shape)
        self.head = MLPHead(self.trunk.feature_dim, hidden, self.num_outputs, dropout)

    def _enc(self, m: str) -> StagedEncoder:
        return cast(StagedEncoder, self.encoders[m])

    def _shape(self, m: str, k: int) -> Shape:
        return self._enc(m).shapes[k]

    @property
    def modalities(self) -> tuple[str, ...]:
        """Names of the inputs the model reads (masked ones included: they are zeroed inside)."""
        return self._modalities

    def _prepare(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        shapes = {m: self.input_shapes[m] for m in self.modalities}
        x = checked_inputs(type(self).__name__, inputs, shapes)
        return {m: torch.zeros_like(v) if m in self.masked else v for m, v in x.items()}

    def branches(self, inputs: Mapping[str, Tensor], inject: Inject | None = None) -> dict[str, Tensor]:
        """Run every branch through its stages and the feature-map points up to the merge point."""
        x = self._prepare(inputs)
        pos = dict.fromkeys(self.modalities, 0)
        inject = inject or {}

        def advance(m: str, target: int) -> None:
            enc = self._enc(m)
            for i in range(pos[m], target):
                if m in inject and inject[m][0] == i:
                    x[m] = inject[m][1](x[m])
                x[m] = enc.run(x[m], i, i + 1)
            pos[m] = target

        for p, op in zip(self.plan, self.fm_ops, strict=True):
            for m, k in p.stages.items():
                advance(m, k)
            x.update(op({m: x[m] for m in p.stages}))
        for m, k in self.merge_point.stages.items():
            advance(m, k)
        return x

    def forward(self, inputs: Mapping[str, Tensor]) -> Tensor:
        x = self.branches(inputs)
        assert self.trunk is not None
        return self.head(self.trunk(self.merger(x)))

    def fusion_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of the fusion operators (feature-map points and the merging operator)."""
        yield from self.fm_ops.parameters()
        yield from self.merger.parameters()

    def parameter_counts(self) -> dict[str, int]:
        """Parameter counts: ``total``, ``fusion``, ``head``, ``encoder.<m>``, ``trunk``."""
        def n(ps: Iterator[nn.Parameter]) -> int:
            return sum(p.numel() for p in ps)
        counts = {"total": n(self.parameters()), "fusion": n(self.fusion_parameters()),
                  "head": n(self.head.parameters()) + n(getattr(self, "heads", nn.Module()).parameters())}
        for m, enc in self.encoders.items():
            counts[f"encoder.{m}"] = n(enc.parameters())
        counts["trunk"] = n(self.trunk.parameters()) if self.trunk is not None else 0
        return counts

    def widened(self, extra: Mapping[str, tuple[int, int]]) -> StagedModel:
        """A copy whose stage ``i`` of ``m`` takes ``k`` extra input channels (``extra[m] = (i, k)``).

        Every weight is copied from this model; the new input slices keep their fresh init.
        """
        from fuselab.models.widen import copy_widened_state

        new = type(self)(**self._args, widen=extra)  # type: ignore[arg-type]
        copy_widened_state(self, new)
        return new


class LateStagedModel(StagedModel):
    """A staged model of the form ``P(F(G_1(x_1), ..., G_K(x_K)))`` (late / decision / pooled).

    ``unimodal_features(inputs) -> {m: (B, feature_dims[m])}`` (``G_m``), ``fuse(features) ->
    (B, fused_dim)`` (``F``; per-modality heads + operator for decision fusion), ``predict(fused) ->
    (B, num_outputs)`` (``P``).
    """

    def unimodal_features(self, inputs: Mapping[str, Tensor], inject: Inject | None = None
                          ) -> dict[str, Tensor]:
        x = self.branches(inputs, inject)
        return {m: self.readouts[m](x[m]) for m in self.merge_point.stages}

    def fuse(self, features: Mapping[str, Tensor]) -> Tensor:
        if self.merge_point.level == "decision":
            features = {m: self.heads[m](f) for m, f in features.items()}
        return self.merger(features)

    def predict(self, fused: Tensor) -> Tensor:
        return self.head(fused)

    def injection_points(self, at: str | int, key: str = "progressive.at"
                         ) -> dict[str, tuple[int, Shape]]:
        """``{m: (k, shape)}``: Pro-Fusion's context enters branch ``m`` before stage ``k``."""
        out = {}
        for m, stop in self.merge_point.stages.items():
            names = self._enc(m).stage_names
            k = 0 if at == "input" else stage_index(at, m, names, key)
            if k >= stop:
                raise ValueError(f"{key}: {at!r} is not before the merging point of {m!r} "
                                 f"(after {stop} stages); allowed: 'input' or 0..{stop - 1} or "
                                 f"{list(names[: stop - 1])}")
            out[m] = (k, self._shape(m, k))
        return out

    def forward(self, inputs: Mapping[str, Tensor]) -> Tensor:
        return self.predict(self.fuse(self.unimodal_features(inputs)))


def build_staged(
    encoders: Mapping[str, Mapping[str, Any]],
    plan: Sequence[Mapping[str, Any]],
    **kwargs: Any,
) -> StagedModel:
    """A :class:`LateStagedModel` for late-style plans, a :class:`StagedModel` otherwise."""
    where = kwargs.get("where", "model")
    if not isinstance(encoders, Mapping) or not encoders:
        raise ValueError(f"{where}.encoders: expected a table modality -> encoder table, "
                         f"got {encoders!r}")
    names = {m: encoder_stage_names(c, f"{where}.encoders.{m}") for m, c in encoders.items()}
    _, merge = parse_plan(plan, names, f"{where}.fusion")
    late = merge.level in ("late", "decision") or merge.adapter == "pool"
    return (LateStagedModel if late else StagedModel)(encoders, plan, **kwargs)
