"""``execution.device``: its forms are validated with the config, and a device this machine lacks
is refused before any run (the ``fuselab`` command exits with 2).

CUDA is simulated by monkeypatching ``torch.cuda``'s availability and device count.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from fuselab.cli import main
from fuselab.study import ConfigError, expand, load_config, open_store, run_study
from fuselab.study.plan import check_plan

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fake_runs import ok_run, write_fake


def _gpus(monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.version, "cuda", "12.4")


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:0", "cuda:7"])
def test_every_device_form_is_accepted_by_the_config(tmp_path: Path, device: str) -> None:
    cfg = load_config(write_fake(tmp_path / "f.toml"), {"execution.device": device})
    assert cfg.execution.device == device


def test_a_missing_gpu_index_fails_the_command_before_any_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    _gpus(monkeypatch, 2)
    cfg = write_fake(tmp_path / "f.toml")
    out = tmp_path / "s"
    code = main(["study", str(cfg), "--out", str(out), "--set", "execution.device=cuda:3",
                 "--quiet", "--no-report"])
    assert code == 2
    err = capsys.readouterr().err
    assert "execution.device: 'cuda:3' asked but this machine has 2 CUDA devices" in err
    store = open_store(out)  # the check comes before any run is even registered
    try:
        assert store.status() == {}
    finally:
        store.close()


def test_the_runner_checks_the_device_before_starting_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _gpus(monkeypatch, 0)
    started: list[str] = []

    def run_fn(task, ckpt, report):  # type: ignore[no-untyped-def]
        started.append(task.run_id)
        return ok_run(task, ckpt, report)

    cfg = load_config(write_fake(tmp_path / "f.toml"), {"execution.device": "cuda"})
    with pytest.raises(ConfigError, match=r"execution\.device: 'cuda' asked but no CUDA device is "
                                          "visible"):
        run_study(cfg, tmp_path / "s", run_fn=run_fn, workers=0, progress=False)
    assert started == []


def test_only_local_runs_need_the_device_on_this_machine(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ray runs execute on the cluster's nodes: the driver may have no GPU."""
    _gpus(monkeypatch, 0)
    cfg = load_config(write_fake(tmp_path / "f.toml"), {"execution.device": "cuda"})
    with pytest.raises(ConfigError) as local:
        check_plan(cfg, expand(cfg), local=True)
    assert local.value.path == "execution.device"
    with pytest.raises(ConfigError) as remote:  # a later check fails this fake study
        check_plan(cfg, expand(cfg), local=False)
    assert remote.value.path != "execution.device"
    _gpus(monkeypatch, 1)
    with pytest.raises(ConfigError) as local:
        check_plan(cfg, expand(cfg), local=True)
    assert local.value.path != "execution.device"
