"""CI smoke test of every reproduction: ``reproductions/<NNN>-<slug>/cpu.toml`` shrunk by its
``smoke.toml``, run in-process, must produce one verdict per declared claim. A folder that needs
several studies has more CPU configs, ``cpu_<name>.toml``, each shrunk by ``smoke_<name>.toml``
when there is one, else by ``smoke.toml``; every one of them goes through the same harness.

Verdicts are not asserted (a smoke run trains for an epoch on a few samples); what is checked is
that the reproduction's config, data, models, evaluations and claims fit together. The fixture
folder beside this file goes through the same harness, so it is exercised even while no
reproduction folder exists. A reproduction whose dataset is not on this machine is skipped with
the reason, except under ``CI=true``, where it fails.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from fuselab.study import ConfigError, load_config, open_store, run_study
from fuselab.study.claims import VERDICTS, claims_of, evaluate_claims
from fuselab.study.overrides import load_overrides

REPO = Path(__file__).resolve().parents[2]
REPRODUCTIONS = REPO / "reproductions"
FIXTURE = Path(__file__).resolve().parent / "fixture"
FOLDER_NAME = re.compile(r"^\d{3}-[a-z0-9-]+$")
MAX_FOLDER_BYTES = 1_000_000
MAX_FIGURES = 3


def reproduction_folders() -> list[Path]:
    """Every ``reproductions/<NNN>-<slug>/`` folder (with or without its files)."""
    if not REPRODUCTIONS.is_dir():
        return []
    return sorted(p for p in REPRODUCTIONS.iterdir() if p.is_dir() and not p.name.startswith("."))


def smoke_for(folder: Path, config: str) -> Path:
    """The overrides that shrink ``config``: ``smoke_<name>.toml`` for ``cpu_<name>.toml`` when
    it exists, else the folder's ``smoke.toml``."""
    own = folder / config.replace("cpu", "smoke", 1)
    return own if own.is_file() else folder / "smoke.toml"


def cpu_configs(folder: Path) -> list[str]:
    """``cpu.toml`` and every ``cpu_<name>.toml`` of a reproduction folder."""
    return ["cpu.toml", *sorted(p.name for p in folder.glob("cpu_*.toml"))]


def run_smoke(folder: Path, out: Path, data_root: Path | None = None,
              config: str = "cpu.toml") -> tuple[Any, list[Any]]:
    """Run ``folder``'s ``config`` at its smoke budget into ``out``; returns (summary, verdicts).

    ``data_root``: where the real datasets are (used unless the config sets ``data.root``)."""
    cpu, smoke = folder / config, smoke_for(folder, config)
    assert cpu.is_file(), f"{folder.name}: no {config}"
    assert smoke.is_file(), f"{folder.name}: {config} has no smoke.toml beside it"
    cfg = load_config(cpu, load_overrides(smoke), origin=str(smoke))
    assert cfg.claims, f"{folder.name}: {config} declares no [[claims]]"
    data_dir = None if cfg.data.root else data_root
    try:
        summary = run_study(cfg, out / "study", workers=0, progress=False, data_dir=data_dir,
                            command=f"smoke {folder.name}")
    except ConfigError as e:
        if "cannot load dataset" in str(e) and data_dir is None and \
                os.environ.get("CI", "").lower() != "true":
            pytest.skip(f"{folder.name}: dataset not on this machine ({e})")
        raise
    store = open_store(out / "study", readonly=True)
    try:
        verdicts = evaluate_claims(claims_of(store.study()), store.runs(), store.records())
        failed = [f"{r['variant']} seed {r['seed']}: {r['error']}" for r in store.runs()
                  if r["status"] == "failed"]
    finally:
        store.close()
    assert not failed, f"{folder.name}: runs failed at the smoke budget: {failed}"
    return summary, verdicts


@pytest.mark.parametrize(
    ("folder", "config"),
    [(FIXTURE, "cpu.toml"), *((f, c) for f in reproduction_folders() for c in cpu_configs(f))],
    ids=lambda v: "fixture" if v == FIXTURE else (v.name if isinstance(v, Path) else v),
)
def test_smoke_run_gives_one_verdict_per_claim(folder: Path, config: str, tmp_path: Path,
                                               data_root: Path | None) -> None:
    from fuselab.report.claims import claims_markdown

    summary, verdicts = run_smoke(folder, tmp_path, data_root, config)
    declared = load_config(folder / config).claims
    assert [v.claim.name for v in verdicts] == [c.name for c in declared]
    assert [v.claim.name for v in summary.claims] == [c.name for c in declared]
    assert all(v.verdict in VERDICTS and v.reason for v in verdicts)
    table = claims_markdown(verdicts).splitlines()
    assert len(table) == 2 + len(declared) and all(c.name in "\n".join(table) for c in declared)


def test_reproduction_folders_are_complete() -> None:
    """No folder is left out of the smoke test by a missing file, and folders stay small."""
    for folder in reproduction_folders():
        assert FOLDER_NAME.match(folder.name), \
            f"reproductions/{folder.name}: expected a <NNN>-<slug> folder name"
        for name in ("cpu.toml", "smoke.toml"):
            assert (folder / name).is_file(), f"reproductions/{folder.name}: no {name}"
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        assert size < MAX_FOLDER_BYTES, f"reproductions/{folder.name}: {size} bytes (< 1 MB)"
        pngs = list(folder.rglob("*.png"))
        assert len(pngs) <= MAX_FIGURES, f"reproductions/{folder.name}: {len(pngs)} PNG files"


def test_the_harness_finds_folders_and_refuses_incomplete_ones(tmp_path: Path) -> None:
    broken = tmp_path / "001-broken"
    broken.mkdir()
    (broken / "cpu.toml").write_text((FIXTURE / "cpu.toml").read_text())
    with pytest.raises(AssertionError, match=r"cpu\.toml has no smoke\.toml"):
        run_smoke(broken, tmp_path / "out")
    no_claims = tmp_path / "002-no-claims"
    no_claims.mkdir()
    text = (FIXTURE / "cpu.toml").read_text()
    (no_claims / "cpu.toml").write_text(text[: text.index("[[claims]]")])
    (no_claims / "smoke.toml").write_text((FIXTURE / "smoke.toml").read_text())
    with pytest.raises(AssertionError, match="declares no"):
        run_smoke(no_claims, tmp_path / "out")
