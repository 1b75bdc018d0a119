"""The `fuselab` command: ops, study, show, report and their error messages."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import pytest

from fuselab.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parent / "study"))


def test_operators_lists_operators(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["operators", "--dims", "a=4,b=6", "--out-dim", "8"]) == 0
    out = capsys.readouterr()
    assert "concat" in out.out and "operators; parameters at in_dims=(a=4, b=6)" in out.out
    assert out.err == ""


def test_ops_is_a_hidden_deprecated_alias_of_operators(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["operators", "--dims", "a=4,b=6", "--out-dim", "8"]) == 0
    new = capsys.readouterr().out
    assert main(["ops", "--dims", "a=4,b=6", "--out-dim", "8"]) == 0
    old = capsys.readouterr()
    assert old.out == new
    assert "'fuselab ops' is deprecated, use 'fuselab operators'" in old.err
    with pytest.raises(SystemExit):
        main(["--help"])
    top = capsys.readouterr().out
    assert "operators" in top and "ops," not in top and "{ops" not in top


def test_missing_config_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["study", str(tmp_path / "nope.toml"), "--out", str(tmp_path / "s")]) == 2
    assert "study config not found" in capsys.readouterr().err


def test_config_error_names_the_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[study]\nname = "x"\n[data]\nname = "lattice"\n[model]\nname = "staged"\n'
                   '[[grid.fusion]]\nop = "concat"\n[[grid.fusion]]\ndepht = "late"\n')
    assert main(["study", str(bad), "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "grid.fusion[1].depht: unknown key" in err and "did you mean 'depth'" in err


def test_show_table_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fake_runs import ok_run, write_fake

    from fuselab.study import run_study

    cfg = write_fake(tmp_path / "fake.toml",
                     extra='\n[[grid.fusion]]\nlabel = "bad"\ntrain = { nan = true }\n')
    run_study(cfg, tmp_path / "s", run_fn=ok_run, check=False, workers=0, progress=False)
    assert main(["show", str(tmp_path / "s"), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)  # strict JSON: NaN metrics became null
    assert data["study"] == "fake" and len(data["runs"]) == 6
    run = data["runs"][0]
    assert set(run) >= {"run_id", "status", "config", "metrics"}
    # where each run ran (docs/cluster.md): this machine, no Ray node, one attempt
    assert (run["host"], run["node"], run["attempts"]) == (socket.gethostname(), None, 1)
    assert run["metrics"]["nan_metric"] is None
    assert main(["show", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert "4 done, 2 failed" in out and "loss became nan" in out
    assert main(["show", str(tmp_path / "none")]) == 2
    assert "no results database" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["report", "{tmp}/nope"], "study folder '{tmp}/nope' does not exist"),
    (["report", "{tmp}/a.txt"], "study folder '{tmp}/a.txt' is not a folder"),
    (["show", "{tmp}/a.txt"], "study folder '{tmp}/a.txt' is not a folder"),
    (["study", "{tmp}/a.txt"], "unknown config format '.txt'"),
    (["study", "{tmp}"], "is a folder"),
    (["study", "{tmp}/c.toml", "--out", "{tmp}/a.txt"], "is a file, not a folder"),
    (["study", "{tmp}/c.toml", "--out", "{tmp}/a.txt/sub"], "Not a directory"),
    (["study", "{tmp}/c.toml", "--out", "{tmp}/s", "--db-url", "foo"], "bad database URL 'foo'"),
    (["study", "{tmp}/c.toml", "--out", "{tmp}/s", "--db-url", "postgresql://u@[::1/x"],
     "bad database URL"),
    (["study", "{tmp}/c.toml", "--out", "{tmp}/s", "--data-dir", "{tmp}/a.txt"], "is a file"),
    (["study", "{tmp}/c.toml", "--out", "{tmp}/s", "--address", "auto"], "needs --backend ray"),
    (["study", "{tmp}/c.toml", "--out", "{tmp}/s", "--shared", "--force"],
     "--force with --shared would discard the runs other processes work on"),
])
def test_bad_paths_and_urls_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               argv: list[str], message: str) -> None:
    from fake_runs import write_fake

    write_fake(tmp_path / "c.toml")
    (tmp_path / "a.txt").write_text("x")
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fuselab: error: ") and err.count("\n") == 1, err
    assert message.format(tmp=tmp_path) in err
    assert not (tmp_path / "s").exists()  # nothing was created for a refused study


@pytest.mark.parametrize("argv", [["study", "c.toml", "--workers", "-1"],
                                  ["study", "c.toml", "--workers", "two"],
                                  ["operators", "--dims", "=4"], ["operators", "--dims", "a=-1"],
                                  ["operators", "--dims", "a=99999999999"], ["operators", "--out-dim", "0"]])
def test_bad_arguments_are_usage_errors(argv: list[str],
                                        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "error: argument" in capsys.readouterr().err


def test_unexpected_errors_are_one_line_unless_debugging(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    import fuselab.study

    def broken(*a: object, **k: object) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(fuselab.study, "open_store", broken)
    monkeypatch.delenv("FUSELAB_DEBUG", raising=False)
    assert main(["show", str(tmp_path)]) == 3
    err = capsys.readouterr().err
    assert err.startswith("fuselab: unexpected error: ZeroDivisionError: a bug\n")
    assert "--debug" in err and "Traceback" not in err
    for argv in (["--debug", "show", str(tmp_path)], ["show", str(tmp_path), "--debug"]):
        with pytest.raises(ZeroDivisionError):
            main(argv)
    monkeypatch.setenv("FUSELAB_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        main(["show", str(tmp_path)])


def test_ctrl_c_outside_a_study_is_exit_130(monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    import fuselab.study

    def interrupted(*a: object, **k: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(fuselab.study, "open_store", interrupted)
    assert main(["show", "x"]) == 130
    assert "interrupted" in capsys.readouterr().err


def test_ops_counts_parameters_without_allocating_them(capsys: pytest.CaptureFixture[str]) -> None:
    # 65536-wide inputs: `tensor` fusion alone has W: 128 x 65537^2 and a bias, 2 TB as float32
    assert main(["operators", "--dims", "a=65536,b=65536", "--out-dim", "128"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("tensor "))
    assert f"{128 * 65537**2 + 128:,}" in row


def test_show_a_study_stopped_before_it_started(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from fuselab.study.studydir import open_study_store

    open_study_store(tmp_path, None).close()  # Ctrl-C during the up-front check leaves this
    assert main(["show", str(tmp_path)]) == 2
    assert "holds no study yet" in capsys.readouterr().err
