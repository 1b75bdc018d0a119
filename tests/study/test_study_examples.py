"""The bundled example configs: what ships, how a bare name resolves, and `fuselab examples`."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from fuselab.cli import main
from fuselab.study import load_config
from fuselab.study.examples import FOLDER, bundled, is_bare, resolve
from fuselab.study.overrides import load_overrides

ROOT = Path(__file__).resolve().parents[2]


def test_the_package_ships_the_repository_examples() -> None:
    # one source of truth: the package folder is the repository's examples/, file for file
    repo = {p.name: p.read_bytes() for p in (ROOT / "examples").glob("*.toml")}
    shipped = {e.path.name: e.path.read_bytes() for e in bundled()}
    assert repo and shipped == repo
    assert [e.name for e in bundled()] == sorted(p.removesuffix(".toml") for p in repo)


def test_every_example_is_valid_for_the_command_it_names() -> None:
    kinds = {}
    for e in bundled():
        kinds[e.name] = e.kind
        assert e.description and "\n" not in e.description, e.name
        if e.kind == "study":
            cfg = load_config(e.path)
            assert cfg.name == e.name  # default output folder runs/<name> = the example's name
            assert e.description == tomllib.loads(e.path.read_text())["study"]["description"]
        elif e.kind == "search":
            pytest.importorskip("optuna")
            from fuselab.search import load_search_config

            assert load_search_config(e.path).study.name == e.name
        else:  # an overrides file: it applies cleanly to the study it is written for
            overrides = load_overrides(e.path)
            target = e.description.split(":")[0].split()[-1]
            assert load_config(resolve(target), overrides).name == overrides["study.name"]
    assert kinds == {"avmnist": "study", "avmnist_search_budget": "overrides", "clstm": "study",
                     "quickstart": "study", "search_avmnist": "search", "transformer": "study"}


def test_quickstart_needs_no_files() -> None:
    cfg = load_config(resolve("quickstart"))
    assert cfg.data.name == "lattice" and cfg.data.root is None  # synthetic: built, not read


def test_bare_name_resolves_to_the_bundled_file(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve("quickstart") == FOLDER / "quickstart.toml"
    assert resolve("search_avmnist", "search") == FOLDER / "search_avmnist.toml"
    assert resolve("avmnist_search_budget", "overrides") == FOLDER / "avmnist_search_budget.toml"
    (tmp_path / "quickstart").mkdir()  # a folder of that name does not hide the example
    assert resolve("quickstart") == FOLDER / "quickstart.toml"


def test_an_existing_file_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "quickstart").mkdir()
    (tmp_path / "quickstart" / "x").write_text("")
    assert resolve("quickstart/x") == Path("quickstart/x")
    (tmp_path / "clstm").write_text("[study]\n")
    assert resolve("clstm") == Path("clstm")
    assert resolve("any/missing.yaml") == Path("any/missing.yaml")  # the reader reports it


def test_bare_names() -> None:
    assert is_bare("quickstart") and is_bare("my.study")
    assert not any(map(is_bare, ["", "a/quickstart", "quickstart.toml", "q.YAML", "q.yml"]))


def test_unknown_and_wrong_kind_names_are_clear(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as e:
        resolve("quickstrat")
    assert str(e.value) == ("no file 'quickstrat' and no bundled study example of that name; "
                            "did you mean 'quickstart'? (bundled: avmnist, clstm, quickstart, "
                            "transformer; `fuselab examples` describes them)")
    with pytest.raises(FileNotFoundError, match="bundled search file, not a study config: run "
                                                "it as `fuselab search search_avmnist`"):
        resolve("search_avmnist")
    with pytest.raises(FileNotFoundError) as e:
        resolve("examples/quickstart.toml")
    assert str(e.value) == ("study config not found: 'examples/quickstart.toml'; the bundled "
                            "example of that name runs as `fuselab study quickstart`")
    with pytest.raises(ValueError, match="kind: expected one of study, search, overrides"):
        resolve("quickstart", "report")


def test_cli_lists_the_examples(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["examples"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for e in bundled():
        assert any(line.split()[:2] == [e.name, e.kind] and line.endswith(e.description)
                   for line in lines), e.name
    assert main(["examples", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"]: r["command"] for r in rows}["quickstart"] == "fuselab study quickstart"


def test_cli_study_takes_a_bare_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    # a value the schema refuses: the error names it, so the bundled file was read and validated
    assert main(["study", "quickstart", "--set", "study.nmae=1"]) == 2
    assert "study.nmae: unknown key" in capsys.readouterr().err
    assert main(["study", "avmnist", "--overrides", "avmnist_search_budget",
                 "--set", "study.nmae=1"]) == 2
    assert "study.nmae: unknown key" in capsys.readouterr().err
    assert main(["study", "quickstrt"]) == 2
    assert "did you mean 'quickstart'?" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
