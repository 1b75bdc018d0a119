"""The up-front check of a whole study, before any run starts.

Structural validation happens in :mod:`fuselab.study.config`; here every distinct piece of the
expanded grid is tried for real: each data config is loaded, each training config is built as a
``TrainConfig``, each evaluation's options are checked against its signature, every distinct
model config is built and run forward on two training samples, and every evaluation of that run
is tried once on a few samples with the untrained model (cheap options such as one timing repeat),
so an evaluation the model does not support fails here, not after training. A problem is reported with the
``[[grid.fusion]]`` entry (or table) it comes from, so nothing fails an hour into a study. The
records of those dry runs are what ``[[claims]]`` are checked against (metric and condition names).
"""

from __future__ import annotations

from typing import Any

from fuselab.study.config import StudyConfig
from fuselab.study.errors import ConfigError
from fuselab.study.evaluations import options
from fuselab.study.grid import RunSpec, canonical_json
from fuselab.study.tracking import check_available


def check_plan(cfg: StudyConfig, specs: list[RunSpec], data_root: str | None = None) -> None:
    """Raise :class:`ConfigError` for the first run that could not start or evaluate."""
    check_available(cfg.execution.tensorboard, cfg.execution.mlflow)
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
    seen_model: set[str] = set()
    dry: list[list[dict[str, Any]]] = []  # records of each dry-run model
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
        mkey = canonical_json([spec.config["model"], spec.config["data"]])
        if mkey in seen_model:
            continue
        seen_model.add(mkey)
        try:
            splits = load_splits(spec.config, data_root)
        except (KeyError, TypeError, ValueError, FileNotFoundError) as e:
            raise ConfigError("data", f"cannot load dataset {cfg.data.name!r}: "
                                      f"{str(e).strip(chr(34))}") from None
        model = _try_model(spec, splits["train"], num_outputs(splits["train"]))
        dry.append(_try_evaluations(spec, model, splits, extra))
    if cfg.claims:
        from fuselab.study.claims.check import check_claim_records, derived_records

        check_claim_records(cfg.claims, derived_records(dry))


def _check_operators(cfg: StudyConfig) -> None:
    """``op`` shorthands name registered fusion operators (error at ``grid.fusion[i].op[j]``)."""
    from fuselab import fusion

    known = fusion.available()
    for v in cfg.fusion:
        ops = v.shorthands.get("op", [])
        for j, op in enumerate(ops):
            if op not in known:
                where = f"{v.where}.op" + (f"[{j}]" if len(ops) > 1 else "")
                raise ConfigError(where, f"unknown fusion operator {op!r}; allowed: {known}")


#: Option overrides that keep the dry run of an evaluation cheap (applied where accepted).
_DRY = {"repeats": 1, "warmup": 0, "throughput_batch": 4, "train_batch": 4, "flops_batch": 1,
        "max_samples": 4, "reference": 2, "max_train": 8, "max_test": 8, "batch_size": 8}


def _try_evaluations(spec: RunSpec, model: Any, splits: dict[str, Any],
                     extra: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Run every evaluation of ``spec`` (and ``extra`` ones) once on a few samples with the
    untrained model; returns their records."""
    import inspect

    from fuselab.study.evaluations import CROSS_RUN, resolve, run_evaluation

    tiny = {k: ds.subset(list(range(min(len(ds), 8 if k != "train" else 16))))
            for k, ds in splits.items()}
    records: list[dict[str, Any]] = []
    todo = {**{e: {} for e in extra}, **spec.config["evaluate"]}
    for name, opts in todo.items():
        if name in CROSS_RUN:
            continue
        accepted = inspect.signature(resolve(name)).parameters
        dry = {**opts, **{k: v for k, v in _DRY.items() if k in accepted}}
        try:
            records += run_evaluation(name, dry, model, tiny, 8)
        except (RuntimeError, TypeError, ValueError, KeyError, AttributeError) as e:
            raise ConfigError(f"{spec.where} ({spec.variant!r}) -> evaluate.{name}",
                              f"fails on this model: {type(e).__name__}: {e}") from None
    return records


def _try_model(spec: RunSpec, train: Any, n_out: int) -> Any:
    import torch

    from fuselab import models

    try:
        model = models.build(spec.config["model"], input_shapes=train.shapes, num_outputs=n_out)
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"{spec.where} ({spec.variant!r}) -> model",
                          str(e).strip('"')) from None
    x, y = next(train.batches(2))
    model.eval()
    try:
        with torch.no_grad():
            if train.task == "generation":
                model(x, y)
            else:
                model(x)
    except (RuntimeError, TypeError, ValueError) as e:
        raise ConfigError(f"{spec.where} ({spec.variant!r}) -> model",
                          f"forward pass on 2 training samples failed: {e}") from None
    return model
