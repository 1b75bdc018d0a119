"""A resumed study refuses data whose source list changed under the same config."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from fake_runs import ok_run

import fuselab.data as fd
from fuselab.study import StudyDirError, open_store, run_study

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from datafakes import make_root, write_wav

CONFIG = """
[study]
name = "identity"
seeds = [0]

[data]
name = "avmnist"
options = {{ manifest = "{manifest}", download = false, verify = false, pairs = 20 }}

[model]
name = "fake"

[[grid.fusion]]
label = "late"
"""


def _write_manifest(path: Path, sums: dict[str, str]) -> None:
    path.write_text("".join(f"{digest}  {rel}\n" for rel, digest in sorted(sums.items())))


def test_resume_refuses_a_changed_recording_list(tmp_path: Path) -> None:
    root, out, manifest = tmp_path / "data", tmp_path / "study", tmp_path / "MANIFEST.sha256"
    sums = make_root(root)
    _write_manifest(manifest, sums)
    cfg = tmp_path / "study.toml"
    cfg.write_text(CONFIG.format(manifest=manifest))

    def run(**kw):
        return run_study(cfg, out, run_fn=ok_run, workers=0, check=False, progress=False,
                         data_dir=root, **kw)

    assert run().done == 1
    stored = open_store(out, readonly=True).study()["data_id"]
    assert stored == fd.identity("avmnist", root=root, manifest=str(manifest))
    assert len(stored) == 64
    # an extra recording on disk is not in the manifest: ignored, same data, resume continues
    write_wav(root / "fsdd/recordings/5_zed_0.wav", np.full(900, 0.1))
    assert run(resume=True).skipped == 1
    # one recording removed from the data (and its list): every pair would change
    (root / "fsdd/recordings/7_ann_3.wav").unlink()
    _write_manifest(manifest, {r: d for r, d in sums.items() if r != "fsdd/recordings/7_ann_3.wav"})
    with pytest.raises(StudyDirError, match=r"results computed on other data: its data identity "
                                            rf"is {stored[:16]}, the data this config reads now"):
        run(resume=True)
    assert open_store(out, readonly=True).study()["data_id"] == stored  # nothing overwritten
    assert run(force=True).mode == "restart"
    assert open_store(out, readonly=True).study()["data_id"] != stored
