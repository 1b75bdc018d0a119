"""The typed study config: load TOML or YAML (:mod:`fuselab.study.configfile`) and validate it.

A study file has these tables (see docs/study.md for every key)::

    [study]      name, description, seeds, baseline
    [data]       name, root, options = {...}            -> fuselab.data.load_splits
    [model]      base config                             -> fuselab.models.build
    [train]      base training config                    -> fuselab.train.TrainConfig
    [[grid.fusion]]  one entry per fusion variant (shorthands, model/train/evaluate overrides,
                     label); ``evaluate`` adds evaluations only this variant supports
    [grid]       train_snr = [...], axes = {...}         product axes over every variant
    [evaluate]   evaluation name -> true | {options}
    [execution]  threads_per_run, workers, max_retries, device, checkpoints, tensorboard, mlflow,
                 lease_s, ray = {num_cpus_per_run, num_gpus_per_run}   (study/cluster.py)
    [[claims]]   what the study should show, checked from the stored records (study/claims/)

Validation here is structural (keys, types, allowed values), each error naming its path, e.g.
``grid.fusion[2].op``. The semantic check (every model built once, every evaluation's options
against its signature) is :func:`fuselab.study.plan.check_plan`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fuselab import _validate as c
from fuselab.study.claims.schema import Claim, parse_claims
from fuselab.study.cluster import RayResources, lease_seconds, ray_resources
from fuselab.study.configfile import check_shape, read_config_file
from fuselab.study.errors import ConfigError
from fuselab.study.overrides import apply_overrides

#: Short keys allowed in a ``[[grid.fusion]]`` entry: key -> (factor name or None, target path).
#: A list value is expanded as a product (``op = ["concat", "lowrank"]`` gives two variants).
#: ``fusion[-1]`` is the merging point of the staged plan (docs/models.md: it comes last).
SHORTHANDS: dict[str, tuple[str | None, str]] = {
    "depth": ("depth", "model.fusion[-1].at"),
    "op": ("operator", "model.fusion[-1].operator"),
    "op_options": (None, "model.fusion[-1].options"),
    "adapter": (None, "model.fusion[-1].adapter"),
    "trunk": (None, "model.fusion[-1].trunk"),
    "fusion_layer": ("fusion_layer", "model.fusion_layer"),
    "progressive": ("progressive", "model.progressive"),
    "grad_blend": ("grad_blend", "train.grad_blend"),
}
#: Upper bounds that keep a typo (an extra zero or two) from exhausting the machine.
MAX_THREADS = 1024
MAX_WORKERS = 4096
_FUSION_RESERVED = ("label", "factors", "model", "train", "evaluate")
#: The top-level tables of a study file.
TOP_TABLES = ("study", "data", "model", "train", "grid", "evaluate", "execution", "claims")


@dataclass(frozen=True)
class DataConfig:
    """Dataset name, optional root and builder options (``load_splits(name, root, **options)``)."""

    name: str
    root: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FusionVariant:
    """One ``[[grid.fusion]]`` entry before product expansion; ``where`` is its path in the file."""

    where: str
    label: str | None
    shorthands: dict[str, list[Any]]
    factors: dict[str, Any]
    model: dict[str, Any]
    train: dict[str, Any]
    evaluate: dict[str, Any] = field(default_factory=dict)  # None: removed


@dataclass(frozen=True)
class Axis:
    """A product axis over every variant: factor ``name`` sets each of ``paths`` to each value.

    ``labels`` (same length as ``values``) are the factor values shown in reports, e.g. ``d = 4``
    for ``values = [[4, 4], ...]``.
    """

    name: str
    paths: list[str]
    values: list[Any]
    labels: list[Any]


@dataclass(frozen=True)
class ExecutionConfig:
    """How runs are executed; none of it changes a run's id.

    ``device``: ``"cpu"`` (default), ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (CUDA when available).
    """

    threads_per_run: int = 1
    workers: int | None = None
    max_retries: int = 1
    device: str = "cpu"
    checkpoints: bool = True
    tensorboard: bool = False
    mlflow: bool = False
    ray: RayResources = field(default_factory=RayResources)
    lease_s: float = 60.0


@dataclass(frozen=True)
class StudyConfig:
    """A whole validated study; ``raw`` is the parsed file, ``source`` where it came from."""

    name: str
    description: str
    seeds: list[int]
    baseline: str | None
    data: DataConfig
    model: dict[str, Any]
    train: dict[str, Any]
    fusion: list[FusionVariant]
    axes: list[Axis]
    train_snrs: list[dict[str, float]]
    evaluate: dict[str, dict[str, Any]]
    execution: ExecutionConfig
    raw: dict[str, Any]
    source: Path | None = None
    claims: list[Claim] = field(default_factory=list)
    #: ``{dotted path: value}`` applied to the file before validation (``--set``, smoke.toml).
    overrides: dict[str, Any] = field(default_factory=dict)


def load_config(path: str | Path, overrides: Mapping[str, Any] | None = None, *,
                origin: str = "override") -> StudyConfig:
    """Read and validate a ``.toml`` / ``.yaml`` / ``.yml`` study file (limits on size, encoding
    and YAML aliases: :mod:`fuselab.study.configfile`).

    ``overrides`` (``{"train.epochs": 1}``) are set before validation, see
    :mod:`fuselab.study.overrides`; ``origin`` names them in error messages.
    """
    p = Path(path)
    raw = read_config_file(p)
    if overrides:
        check_shape(raw)  # before the overrides walk it
        raw = apply_overrides(c.table(raw, ""), overrides, tables=TOP_TABLES, origin=origin)
        return replace(parse_config(raw, source=p), overrides=dict(overrides))
    return parse_config(raw, source=p)


def parse_config(raw: Any, source: Path | None = None) -> StudyConfig:
    """Validate an already parsed mapping (the content of a study file)."""
    check_shape(raw)
    top = c.table(raw, "")
    c.plain(top, "")
    c.known_keys(top, TOP_TABLES, "")
    for key in ("study", "data", "model", "grid"):
        if key not in top:
            raise ConfigError(key, "missing required table")
    study = c.table(top["study"], "study")
    c.known_keys(study, ("name", "description", "seeds", "baseline"), "study")
    if "name" not in study:
        raise ConfigError("study.name", "missing required key")
    seeds = [c.integer(s, f"study.seeds[{i}]", 0) for i, s in
             enumerate(c.items(study.get("seeds", [0]), "study.seeds"))]
    if len(set(seeds)) != len(seeds):
        raise ConfigError("study.seeds", f"seeds must be distinct, got {seeds}")
    baseline = study.get("baseline")
    grid = c.table(top["grid"], "grid")
    c.known_keys(grid, ("fusion", "axes", "train_snr"), "grid")
    if "fusion" not in grid:
        raise ConfigError("grid.fusion", "missing: list at least one fusion variant")
    return StudyConfig(
        name=c.name(study["name"], "study.name"),
        description=_description(study.get("description", "")),
        seeds=seeds,
        baseline=None if baseline is None else c.string(baseline, "study.baseline"),
        data=_data(top["data"]),
        model=_model(top["model"]),
        train=c.table(top.get("train", {}), "train"),
        fusion=[_variant(v, f"grid.fusion[{i}]") for i, v in
                enumerate(c.items(grid["fusion"], "grid.fusion"))],
        axes=[_axis(name, v) for name, v in c.table(grid.get("axes", {}), "grid.axes").items()],
        train_snrs=[_snr(s, f"grid.train_snr[{i}]") for i, s in
                    enumerate(c.items(grid.get("train_snr", [{}]), "grid.train_snr"))],
        evaluate=_evaluate(top.get("evaluate", {"test": True})),
        execution=_execution(top.get("execution", {})),
        raw=top,
        source=source,
        claims=parse_claims(top.get("claims", [])),
    )


def _description(value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError("study.description", f"expected a string, got {c.type_name(value)}")
    return value


def _data(value: Any) -> DataConfig:
    d = c.table(value, "data")
    c.known_keys(d, ("name", "root", "options"), "data")
    if "name" not in d:
        raise ConfigError("data.name", "missing required key (a registered dataset name)")
    root = d.get("root")
    return DataConfig(
        name=c.string(d["name"], "data.name"),
        root=None if root is None else c.string(root, "data.root"),
        options=c.table(d.get("options", {}), "data.options"),
    )


def _model(value: Any) -> dict[str, Any]:
    m = c.table(value, "model")
    if "name" not in m:
        raise ConfigError("model.name", "missing required key (the model family)")
    c.string(m["name"], "model.name")
    return m


def _variant(value: Any, where: str) -> FusionVariant:
    v = c.table(value, where)
    c.known_keys(v, (*_FUSION_RESERVED, *SHORTHANDS), where)
    shorthands: dict[str, list[Any]] = {}
    for key in SHORTHANDS:
        if key in v:
            vals = v[key] if isinstance(v[key], list) else [v[key]]
            shorthands[key] = c.items(vals, f"{where}.{key}")
    label = v.get("label")
    factors = c.table(v.get("factors", {}), f"{where}.factors")
    for k, f in factors.items():
        if not isinstance(f, (str, int, float, bool)):
            raise ConfigError(f"{where}.factors.{k}", f"expected a scalar, got {c.type_name(f)}")
    if label is None and not shorthands and not factors:
        raise ConfigError(where, "name the variant: give 'label', 'factors' or a shorthand "
                                 f"key {sorted(SHORTHANDS)}")
    return FusionVariant(
        where=where,
        label=None if label is None else c.string(label, f"{where}.label"),
        shorthands=shorthands,
        factors=factors,
        model=c.table(v.get("model", {}), f"{where}.model"),
        train=c.table(v.get("train", {}), f"{where}.train"),
        evaluate=_evaluate(v.get("evaluate", {}), f"{where}.evaluate"),
    )


def _axis(name: str, value: Any) -> Axis:
    where = f"grid.axes.{name}"
    a = c.table(value, where)
    c.known_keys(a, ("path", "values", "labels"), where)
    for key in ("path", "values"):
        if key not in a:
            raise ConfigError(f"{where}.{key}", "missing required key")
    raw_paths = a["path"] if isinstance(a["path"], list) else [a["path"]]
    paths = [c.string(p, f"{where}.path") for p in c.items(raw_paths, f"{where}.path")]
    for path in paths:
        c.dotted_path(path, f"{where}.path")
        root = path.split(".")[0]
        if root not in ("model", "train") and not path.startswith("data.options."):
            raise ConfigError(f"{where}.path", f"expected 'model.KEY', 'train.KEY' or "
                                               f"'data.options.KEY', got {path!r}")
    values = c.items(a["values"], f"{where}.values")
    labels = c.items(a.get("labels", values), f"{where}.labels")
    if len(labels) != len(values):
        raise ConfigError(f"{where}.labels", f"expected {len(values)} labels (one per value), "
                                             f"got {len(labels)}")
    for i, lab in enumerate(labels):
        if not isinstance(lab, (str, int, float)) and "labels" in a:
            raise ConfigError(f"{where}.labels[{i}]", f"expected a scalar, got {lab!r}")
    return Axis(name=name, paths=paths, values=values, labels=labels)


def _snr(value: Any, where: str) -> dict[str, float]:
    """A training-noise setting ``{modality: linear SNR}``; ``{}`` means clean."""
    out: dict[str, float] = {}
    for m, v in c.table(value, where).items():
        out[m] = c.number(v, f"{where}.{m}")
        if out[m] <= 0:
            raise ConfigError(f"{where}.{m}", f"linear SNR must be > 0, got {v}")
    return out


def _evaluate(value: Any, where: str = "evaluate") -> dict[str, Any]:
    """``{name: options}``; in a ``[[grid.fusion]]`` entry, ``false`` (kept as ``None``) removes
    an evaluation the variant cannot run (e.g. the 2-modality SNR grid of a unimodal model)."""
    e = c.table(value, where)
    out: dict[str, Any] = {}
    for name, opts in e.items():
        if opts is False:
            if where != "evaluate":
                out[name] = None
            continue
        out[name] = {} if opts is True else c.table(opts, f"{where}.{name}")
    return out


def _device(value: Any) -> str:
    """``execution.device``: ``"auto" | "cpu" | "cuda" | "cuda:N"`` (whether the device exists
    here is checked before the runs, :func:`fuselab.study.plan.check_plan`)."""
    from fuselab.device import DeviceError, check_device_setting

    try:
        return check_device_setting(value)
    except DeviceError as e:
        raise ConfigError("execution.device", str(e)) from None


def _execution(value: Any) -> ExecutionConfig:
    x = c.table(value, "execution")
    c.known_keys(x, ExecutionConfig.__dataclass_fields__, "execution")
    workers = x.get("workers")
    return ExecutionConfig(
        threads_per_run=c.integer(x.get("threads_per_run", 1), "execution.threads_per_run", 1,
                                  MAX_THREADS),
        workers=None if workers is None else c.integer(workers, "execution.workers", 0,
                                                       MAX_WORKERS),
        max_retries=c.integer(x.get("max_retries", 1), "execution.max_retries", 0, 100),
        device=_device(x.get("device", "cpu")),
        checkpoints=c.boolean(x.get("checkpoints", True), "execution.checkpoints"),
        tensorboard=c.boolean(x.get("tensorboard", False), "execution.tensorboard"),
        mlflow=c.boolean(x.get("mlflow", False), "execution.mlflow"),
        ray=ray_resources(x.get("ray", {})),
        lease_s=lease_seconds(x.get("lease_s", 60.0)),
    )
