"""report.html / report.md files: figures exist and are embedded, failures shown, gaps omitted."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
from report_fakes import make_study

from fuselab.report import build_report, render

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def report(full_report):
    return full_report[0]


def _only(records, *evaluations):
    return [r for r in records if r["evaluation"] in evaluations]


def test_outputs_and_figure_files(report):
    assert set(report) == {"html", "md", "figures"}
    pngs = sorted(report["figures"].glob("*.png"))
    # leaderboard-level figures, SNR grid + difference, robustness, EMAP, 3 MSAF, 2 C-LSTM, probes,
    # curves: every evaluation of the fake study is drawn.
    names = {re.sub(r"^\d\d_", "", p.stem) for p in pngs}
    for expected in ("accuracy_vs_depth", "accuracy_vs_cost", "cost_vs_depth", "snr_grid",
                     "snr_grid_difference", "robustness_curves", "emap", "probe_accuracy",
                     "training_curves"):
        assert expected in names
    assert sum(n.startswith("msaf_attention") for n in names) == 3  # the three gated variants
    assert sum(n.startswith("clstm_steps") for n in names) == 2  # the two early variants
    for p in pngs:
        assert p.read_bytes()[:8] == PNG_MAGIC


def test_markdown_references_every_figure_and_each_exists(report):
    md = report["md"].read_text()
    refs = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    files = sorted(report["figures"].glob("*.png"))
    assert len(refs) == len(files) > 0
    for ref in refs:
        assert not Path(ref).is_absolute()
        assert (report["md"].parent / ref).is_file()
    assert {(report["md"].parent / r).resolve() for r in refs} == {f.resolve() for f in files}


def test_html_is_self_contained_and_embeds_every_figure_byte_for_byte(report):
    html = report["html"].read_text()
    srcs = re.findall(r'<img src="([^"]+)"', html)
    files = sorted(report["figures"].glob("*.png"))
    assert len(srcs) == len(files)
    embedded = sorted(base64.b64decode(s.split(",", 1)[1]) for s in srcs)
    assert embedded == sorted(f.read_bytes() for f in files)
    assert all(s.startswith("data:image/png;base64,") for s in srcs)
    # Nothing fetched from elsewhere: no external scripts, stylesheets or links.
    assert not re.search(r'<(script|link)[^>]+(src|href)=', html)
    assert "http://" not in html and "https://" not in html


def test_failed_run_message_shown_and_escaped(report):
    html = report["html"].read_text()
    md = report["md"].read_text()
    assert "FloatingPointError: non-finite loss nan at step 37" in html
    assert "&lt;script&gt;x&lt;/script&gt;" in html and "<script>x</script>" not in html
    fenced = re.search(r"```text\n(.*?)\n```", md, re.S)
    assert fenced and "non-finite loss nan at step 37" in fenced.group(1)
    assert 'id="failed-section"' in html


def test_tables_one_row_per_variant_and_per_run(report):
    html = report["html"].read_text()
    _, runs, _ = make_study()

    def rows(table_id):
        m = re.search(rf'<table id="{table_id}".*?<tbody>(.*?)</tbody>', html, re.S)
        assert m, table_id
        return m.group(1).count("<tr>")

    assert rows("leaderboard") == len({r["variant"] for r in runs})
    assert rows("runs") == len(runs)
    assert 'class="sortable"' in html
    # The best variant (highest mean accuracy) is rank 1 in both formats.
    assert re.search(r"<td data-sort=\"1\">1</td><td data-sort=\"early · gated\"", html)
    assert "| 1 | early · gated |" in report["md"].read_text()
    assert "Best variant by test_accuracy: early · gated (0." in html


def test_missing_evaluations_are_omitted_and_stale_figures_removed(tmp_path):
    study, runs, records = make_study()
    out = tmp_path / "r"
    render(study, runs, _only(records, "test", "snr_grid"), out, strict=True)
    assert len(list((out / "figures").glob("*.png"))) == 5
    res = render(study, runs, _only(records, "test"), out, strict=True)
    html = res["html"].read_text()
    for gone in ('id="snr-grid"', 'id="robustness"', 'id="missing"', 'id="emap"',
                 'id="inspection"', 'id="training"', 'id="warnings"'):
        assert gone not in html
    assert 'id="leaderboard"' in html and 'id="design"' in html
    pngs = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert pngs == ["01_accuracy_vs_depth.png", "02_accuracy_vs_cost.png", "03_cost_vs_depth.png"]


def test_bad_records_become_a_warning_or_raise_in_strict_mode(tmp_path):
    study, runs, records = make_study()
    records = _only(records, "test", "snr_grid", "inspect_clstm")
    for r in records:
        if r["evaluation"] == "inspect_clstm":
            r.pop("step")
    res = render(study, runs, records, tmp_path / "loose")
    html = res["html"].read_text()
    assert 'id="warnings"' in html and "clstm_activations: KeyError" in html
    assert 'id="snr-grid"' in html  # the rest of the report is still there
    with pytest.raises(KeyError, match="step"):
        render(study, runs, _only(records, "inspect_clstm"), tmp_path / "strict", strict=True)


class _FakeStore:
    def __init__(self):
        self._study, self._runs, records = make_study()
        self._records = _only(records, "test", "curve")
        self.closed = False

    def study(self):
        return self._study

    def runs(self):
        return self._runs

    def records(self, run_id=None):
        return [r for r in self._records if run_id is None or r["run_id"] == run_id]


def test_build_report_from_a_store_object(tmp_path):
    res = build_report(_FakeStore(), tmp_path / "out")
    assert res["html"].parent == tmp_path / "out" and res["md"].is_file()
    with pytest.raises(ValueError, match="out_dir is required"):
        build_report(_FakeStore())
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_report(tmp_path / "no-such-study")
    with pytest.raises(TypeError, match="expected a study directory"):
        build_report(3.5)


def test_a_study_without_finished_runs_still_renders(tmp_path):
    res = render({"name": "empty", "config": {}}, [], [], tmp_path / "empty", strict=True)
    html = res["html"].read_text()
    assert "0 runs (none) over 0 variants" in html and not list(res["figures"].glob("*.png"))
    pending = [{"run_id": f"p{i}", "status": "pending", "variant": "late · concat", "seed": i}
               for i in range(2)]
    res = render({"name": "p"}, pending, [], tmp_path / "pending", strict=True)
    html = res["html"].read_text()
    assert "2 runs (2 pending) over 1 variants" in html
    assert 'id="runs"' in html and 'id="leaderboard"' in html  # 0/2 done, listed
