"""Where a study writes, and what it may delete: never outside its folder, never a file it did not
write, never into a database that is not its own; read-only media are read, not written."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from fake_runs import ok_run, write_fake

from fuselab.study import (
    ConfigError,
    StoreError,
    StoreReadOnlyError,
    StudyDirError,
    open_store,
    run_study,
)


def _run(cfg: Path, out: Path | None, **kw):  # type: ignore[no-untyped-def]
    kw.setdefault("run_fn", ok_run)
    kw.setdefault("workers", 0)
    return run_study(cfg, out, check=False, progress=False, **kw)


def _tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` with the sha256 of its content."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_name_never_writes_outside_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = write_fake(tmp_path / "fake.toml")
    cfg.write_text(cfg.read_text().replace('name = "fake"', 'name = "../../escaped"'))
    with pytest.raises(ConfigError, match=r"^study\.name: expected a name"):
        _run(cfg, None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake.toml"]
    cfg.write_text(cfg.read_text().replace('"../../escaped"', '"my study (v2)"'))
    s = _run(cfg, None)
    assert s.study_dir == Path("runs") / "my study (v2)" and s.done == 4
    assert (tmp_path / "runs" / "my study (v2)" / "results.sqlite").is_file()


def test_out_must_be_new_empty_or_a_study_folder(fake_config: Path, tmp_path: Path) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    with pytest.raises(StudyDirError, match="is a file, not a folder"):
        _run(fake_config, a_file)
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "data.csv").write_text("1,2\n")
    before = _tree(theirs)
    for force in (False, True):
        with pytest.raises(StudyDirError, match=r"not a fuselab study folder \(it holds 'data.csv'"):
            _run(fake_config, theirs, force=force)
    assert _tree(theirs) == before and sorted(os.listdir(theirs)) == ["data.csv"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _run(fake_config, empty).done == 4
    here = tmp_path / "with_config"  # the config being run may sit in its own study folder
    here.mkdir()
    shutil.copy(fake_config, here / "config.toml")
    assert _run(here / "config.toml", here).done == 4


def test_foreign_databases_are_refused_and_left_unchanged(fake_config: Path,
                                                          tmp_path: Path) -> None:
    for i, (name, sql) in enumerate([("runs", "CREATE TABLE runs (a)"),
                                     ("other", "CREATE TABLE other (a)")]):
        out = tmp_path / f"foreign{i}"
        out.mkdir()
        con = sqlite3.connect(out / "results.sqlite")
        con.execute(sql)
        con.execute(f"INSERT INTO {name} VALUES (1)")
        con.commit()
        con.close()
        before = _tree(out)
        with pytest.raises(StoreError, match="not a fuselab results"):
            _run(fake_config, out, force=True)
        assert _tree(out) == before  # not even switched to WAL mode
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "results.sqlite").write_bytes(b"not sqlite" * 100)
    with pytest.raises(StoreError, match="not a readable SQLite results database"):
        _run(fake_config, garbage)
    assert sorted(os.listdir(garbage)) == ["results.sqlite"]


@pytest.mark.parametrize("names", [("a#1", "a"), ("b?x=1", "b"), ("c%23", "c#"),
                                   ("d 1", "d%201"), ("é?#%", "é")])
def test_out_paths_with_uri_characters_keep_their_own_database(fake_config: Path, tmp_path: Path,
                                                               names: tuple[str, str]) -> None:
    first, second = (tmp_path / n for n in names)
    _run(fake_config, first)
    other = write_fake(tmp_path / "other.toml", sleep=0.001)  # another study, other run ids
    _run(other, second)
    for out, cfg in ((first, fake_config), (second, other)):
        assert (out / "results.sqlite").is_file()
        runs = open_store(out, readonly=True).runs()
        assert len(runs) == 4 and {r["config"]["train"]["sleep"] for r in runs} == \
            {0.0 if cfg == fake_config else 0.001}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["fake.toml", "other.toml",
                                                                 *names])


def test_force_deletes_only_what_fuselab_wrote(fake_config: Path, tmp_path: Path) -> None:
    out = tmp_path / "study"
    _run(fake_config, out)
    old = {r["run_id"] for r in open_store(out, readonly=True).runs()}
    assert {p.stem for p in (out / "checkpoints").glob("*.pt")} == old
    mine = {out / "notes.md": "my notes", out / "checkpoints" / "mine.pt": "my weights",
            out / "checkpoints" / "0123456789abcdef.pt": "named like a run, not one",
            out / "checkpoints" / ".partial-x": "not a partial of fuselab's",
            out / "report.html": "a report"}
    for path, text in mine.items():
        path.write_text(text)
    other = write_fake(tmp_path / "other.toml", sleep=0.001)
    s = _run(other, out, force=True)
    assert (s.mode, s.done) == ("restart", 4)
    for path, text in mine.items():
        assert path.read_text() == text
    new = {r["run_id"] for r in open_store(out, readonly=True).runs()}
    left = {p.stem for p in (out / "checkpoints").glob("*.pt")}
    assert left == new | {"mine", "0123456789abcdef"}  # the old runs' checkpoints are gone


def test_lock_file_link_is_not_followed(fake_config: Path, tmp_path: Path) -> None:
    out = tmp_path / "study"
    out.mkdir()
    victim = tmp_path / "important.txt"
    victim.write_text("precious")
    (out / "study.lock").symlink_to(victim)
    with pytest.raises(StudyDirError):
        _run(fake_config, out)
    assert victim.read_text() == "precious"


# ---- read-only media -----------------------------------------------------------------------

def _readonly(folder: Path, code: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -c code`` with ``folder`` read-only: a read-only bind mount in a private
    mount namespace when root (chmod does not stop root), else ``chmod -w``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    if os.geteuid() == 0:
        script = 'mount --bind -o ro "$0" "$0" && exec "$1" -c "$2"'
        cmd = ["unshare", "-m", "sh", "-c", script, str(folder), sys.executable, code]
        if shutil.which("unshare") is None or subprocess.run(
                ["unshare", "-m", "true"], capture_output=True).returncode != 0:
            pytest.skip("running as root without mount namespaces: cannot make a folder read-only")
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    modes = {p: p.stat().st_mode for p in [folder, *folder.rglob("*")]}
    for p in modes:
        p.chmod(modes[p] & ~0o222)
    try:
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env=env, timeout=120)
    finally:
        for p, mode in modes.items():
            p.chmod(mode)


SHOW = ("import sys; from fuselab.cli import main; "
        "sys.exit(main(['show', {out!r}, '--format', 'json']))")


def test_a_finished_study_is_read_from_read_only_media(fake_config: Path, tmp_path: Path) -> None:
    out = tmp_path / "study"
    _run(fake_config, out)
    assert sorted(os.listdir(out)) == ["checkpoints", "config.toml", "results.sqlite",
                                       "study.lock"]  # WAL files are gone after a clean close
    res = _readonly(out, SHOW.format(out=str(out)))
    assert res.returncode == 0, res.stderr
    assert res.stdout.count('"status": "done"') == 4
    code = ("import sys; sys.path.insert(0, {here!r}); from fake_runs import ok_run; "
            "from fuselab.study import run_study\n"
            "try:\n    run_study({cfg!r}, {out!r}, resume=True, run_fn=ok_run, check=False, "
            "workers=0, progress=False)\n"
            "except Exception as e:\n    print(type(e).__name__, e); sys.exit(7)")
    from fake_runs import HERE

    res = _readonly(out, code.format(here=str(HERE), cfg=str(fake_config), out=str(out)))
    assert res.returncode == 7 and res.stdout.startswith("StoreReadOnlyError"), res
    assert "read-only" in res.stdout
    res = _readonly(out, "import sys; from fuselab.cli import main; "
                         f"sys.exit(main(['report', {str(out)!r}]))")
    assert res.returncode == 2 and "cannot write the report" in res.stderr
    assert StoreReadOnlyError.__mro__[1] is StoreError


def test_unwritten_wal_on_read_only_media_is_refused_not_ignored(fake_config: Path,
                                                                 tmp_path: Path) -> None:
    out = tmp_path / "study"
    _run(fake_config, out)
    # a study stopped while writing: changes still in the -wal file, not in the database
    con = sqlite3.connect(out / "results.sqlite")
    con.execute("PRAGMA wal_autocheckpoint = 0")
    con.execute("UPDATE runs SET status = 'failed'")
    con.commit()
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("results.sqlite", "results.sqlite-wal"):
        shutil.copy(out / name, copy / name)
    con.close()
    assert (copy / "results.sqlite-wal").stat().st_size > 0
    res = _readonly(copy, SHOW.format(out=str(copy)))
    assert res.returncode == 2
    assert "holds changes not yet written" in res.stderr and "copy the study" in res.stderr
