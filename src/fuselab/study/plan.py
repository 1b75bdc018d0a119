"""The up-front check of a whole study, before any run starts.

Structural validation happens in :mod:`fuselab.study.config`; here every distinct piece of the
expanded grid is tried for real: each data config is loaded, each training config is built as a
``TrainConfig``, each evaluation's options are checked against its signature,
``execution.device`` is checked to exist on this machine (local runs; ``"cuda:3"`` with two GPUs
is refused), and for every distinct run config (seed aside) the model is measured on the meta device, built, run forward on two training samples, trained for
one step on 64 samples with the run's training config, and every evaluation of that run is tried
once on a few samples (cheap options such as one timing repeat). So a setting that would fail
every run (an unknown metric, a training-noise modality the data lacks, an evaluation the model
does not support, a model too large for memory) fails here, not an hour into a study, and the
problem is reported with the ``[[grid.fusion]]`` entry (or table) it comes from. The records of
those dry runs are what ``[[claims]]`` are checked against (metric and condition names).
"""

from __future__ import annotations

from typing import Any

from fuselab.study.config import StudyConfig
from fuselab.study.errors import ConfigError
from fuselab.study.evaluate_table import options
from fuselab.study.grid import RunSpec, canonical_json
from fuselab.study.resources import check_device, check_model_size
from fuselab.study.tracking import check_available


def check_plan(cfg: StudyConfig, specs: list[RunSpec], data_root: str | None = None,
               local: bool = True) -> None:
    """Raise :class:`ConfigError` for the first run that could not start or evaluate.

    ``local``: runs execute on this machine (checks ``execution.device`` here)."""
    check_available(cfg.execution.tensorboard, cfg.execution.mlflow)
    if local:
        check_device(cfg.execution.device)
    for name, opts in cfg.evaluate.items():
        options(name, opts)
    _check_operators(cfg)
    for v in cfg.fusion:
        for name, opts in v.evaluate.items():
            if opts is None:  # removed for this variant
                continue
            try:
                options(name, opts)
            except ConfigError as e:
                raise ConfigError(f"{v.where}.{e.path}", str(e).split(": ", 1)[-1]) from None
    if "robustness" in cfg.evaluate:
        if "snr_curve" not in cfg.evaluate:
            raise ConfigError("evaluate.robustness", "needs evaluate.snr_curve (robustness is "
                                                     "computed from the SNR curves)")
        if cfg.baseline is None:
            raise ConfigError("study.baseline", "evaluate.robustness needs a baseline variant")
    from fuselab.study.execute import load_splits, num_outputs, train_config

    seen_train: set[str] = set()
    seen: set[str] = set()
    dry: list[list[dict[str, Any]]] = []  # records of each dry run
    # training curves hold val_<test metric>: a claim on them needs the test metrics' names
    extra = ("test",) if any(cl.evaluation == "curve" for cl in cfg.claims) else ()
    for spec in specs:
        tkey = canonical_json(spec.config["train"])
        if tkey not in seen_train:
            seen_train.add(tkey)
            try:
                train_config(spec.config, spec.seed, cfg.execution.threads_per_run)
            except (TypeError, ValueError) as e:
                raise ConfigError(f"{spec.where} -> train", str(e)) from None
        key = canonical_json({k: v for k, v in spec.config.items() if k != "seed"})
        if key in seen:
            continue
        seen.add(key)
        try:
            splits = load_splits(spec.config, data_root)
        except Exception as e:  # any failure to load is the data config's
            what = "does not fit in memory" if _out_of_memory(e) else "cannot be loaded"
            raise ConfigError("data", f"dataset {cfg.data.name!r} {what}: {_text(e)}") from None
        tiny = {k: ds.subset(list(range(min(len(ds), 64 if k == "train" else 8))))
                for k, ds in splits.items()}
        model = _try_model(spec, splits["train"], num_outputs(splits["train"]))
        _try_fit(spec, model, tiny, cfg.execution.threads_per_run)
        dry.append(_try_evaluations(spec, model, tiny, extra))
    if cfg.claims:
        from fuselab.study.claims.check import check_claim_records, derived_records

        check_claim_records(cfg.claims, derived_records(dry))


def _out_of_memory(e: BaseException) -> bool:
    text = str(e).lower()
    return isinstance(e, MemoryError) or "can't allocate memory" in text or \
        "out of memory" in text


def _text(e: BaseException, typed: bool = False, limit: int = 400) -> str:
    """An exception as one line of at most ``limit`` characters for a ``ConfigError``, with its
    type when ``typed`` or when the message alone would be unclear."""
    msg = " ".join(str(e).strip().strip('"').split())
    if len(msg) > limit:
        msg = msg[: limit - 4] + " ..."
    plain = isinstance(e, (KeyError, TypeError, ValueError, FileNotFoundError)) and msg
    return msg if plain and not typed else f"{type(e).__name__}: {msg}"


def _try_fit(spec: RunSpec, model: Any, tiny: dict[str, Any], threads: int) -> None:
    """One training step and one validation pass on a few samples, with the run's own training
    config, so that settings which only ``fit`` can judge (the monitored metric, training-noise
    modalities, gradient blending) fail here rather than in every run."""
    from fuselab.study.execute import train_config
    from fuselab.train import fit

    tcfg = train_config(spec.config, spec.seed, threads).replace(
        epochs=1, max_steps=1, compile=False, progress=False)
    try:
        fit(model, tiny["train"], tiny.get("val"), tcfg, progress=False)
    except Exception as e:
        raise ConfigError(f"{spec.where} ({spec.variant!r}) -> train",
                          f"training fails on 64 samples: {_text(e)}") from None


def _check_operators(cfg: StudyConfig) -> None:
    """``op`` shorthands name registered fusion operators (error at ``grid.fusion[i].op[j]``)."""
    from fuselab import fusion
    from fuselab._registry import UnknownNameError

    known = fusion.available()
    for v in cfg.fusion:
        ops = v.shorthands.get("op", [])
        for j, op in enumerate(ops):
            if op not in known:
                where = f"{v.where}.op" + (f"[{j}]" if len(ops) > 1 else "")
                raise ConfigError(where, UnknownNameError("fusion operator", op, known).message)


#: Option overrides that keep the dry run of an evaluation cheap (applied where accepted).
_DRY = {"repeats": 1, "warmup": 0, "throughput_batch": 4, "train_batch": 4, "flops_batch": 1,
        "max_samples": 4, "reference": 2, "max_train": 8, "max_test": 8, "batch_size": 8,
        "max_iter": 2}


def _try_evaluations(spec: RunSpec, model: Any, tiny: dict[str, Any],
                     extra: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Run every evaluation of ``spec`` (and ``extra`` ones) once on the few samples of ``tiny``
    with the barely trained model; returns their records."""
    import inspect

    from fuselab.study.evaluate_table import CROSS_RUN, resolve, run_evaluation

    records: list[dict[str, Any]] = []
    todo = {**{e: {} for e in extra}, **spec.config["evaluate"]}
    for name, opts in todo.items():
        if name in CROSS_RUN:
            continue
        accepted = inspect.signature(resolve(name)).parameters
        dry = {**opts, **{k: v for k, v in _DRY.items() if k in accepted}}
        try:
            records += run_evaluation(name, dry, model, tiny, 8)
        except Exception as e:
            raise ConfigError(f"{spec.where} ({spec.variant!r}) -> evaluate.{name}",
                              f"fails on this model: {_text(e, typed=True)}") from None
    return records


def _try_model(spec: RunSpec, train: Any, n_out: int) -> Any:
    import torch

    from fuselab import models

    where = f"{spec.where} ({spec.variant!r}) -> model"

    def build() -> Any:
        return models.build(spec.config["model"], input_shapes=train.shapes, num_outputs=n_out)

    check_model_size(build, where)
    try:
        model = build()
    except Exception as e:
        what = "cannot be allocated: " if _out_of_memory(e) else ""
        raise ConfigError(where, what + _text(e)) from None
    x, y = next(train.batches(2))
    model.eval()
    try:
        with torch.no_grad():
            if train.task == "generation":
                model(x, y)
            else:
                model(x)
    except Exception as e:
        raise ConfigError(where, f"forward pass on 2 training samples failed: {_text(e)}") from None
    return model
