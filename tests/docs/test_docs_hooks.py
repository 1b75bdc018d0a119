"""The MkDocs hooks (docs/hooks.py): README links rewritten for the site, reproduction pages.

The link rewriting is tested on its own; the reproduction pages by building a small site (the
default ``mkdocs`` theme, no API reference) around a fake repository in a temporary directory.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HOOKS = REPO / "docs" / "hooks.py"


@pytest.fixture(scope="module")
def hooks():
    pytest.importorskip("mkdocs")
    spec = importlib.util.spec_from_file_location("fuselab_docs_hooks", HOOKS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ON_SITE = {"index.md", "study.md", "report.md", "reproductions/001-demo/RESULTS.md",
           "reproductions/001-demo/claim1.png"}


def test_readme_links_point_at_site_pages(hooks) -> None:
    text = ("See [docs/study.md](docs/study.md#claims) and [the report](docs/report.md), "
            "[benchmarks/README.md](benchmarks/README.md), [Ray](https://ray.io), [up](#top).")
    out = hooks.rewrite_links(text, "README.md", "index.md", ON_SITE)
    assert "[docs/study.md](study.md#claims)" in out
    assert "[the report](report.md)" in out
    assert "`benchmarks/README.md`" in out and "(benchmarks/README.md)" not in out
    assert "[Ray](https://ray.io)" in out and "[up](#top)" in out


def test_links_in_code_fences_are_left_alone(hooks) -> None:
    text = "```python\nx = a[0](docs/study.md)\n```\n[s](docs/study.md)\n"
    out = hooks.rewrite_links(text, "README.md", "index.md", ON_SITE)
    assert "a[0](docs/study.md)" in out and "[s](study.md)" in out


def test_results_page_links_resolve_from_its_folder(hooks) -> None:
    text = ("![c](claim1.png) [guide](../../docs/report.md#sections) "
            "[cfg](../../examples/quickstart.toml) [missing](claim9.png)")
    page = "reproductions/001-demo/RESULTS.md"
    out = hooks.rewrite_links(text, page, page, ON_SITE)
    assert "![c](claim1.png)" in out
    assert "[guide](../../report.md#sections)" in out
    assert "cfg (`examples/quickstart.toml`)" in out
    assert "missing (`reproductions/001-demo/claim9.png`)" in out


def _fake_repo(root: Path) -> None:
    (root / "docs" / "reproductions").mkdir(parents=True)
    (root / "mkdocs.yml").write_text(
        f"site_name: t\nstrict: true\nhooks: [{HOOKS}]\ntheme: {{name: mkdocs}}\n"
        "validation: {omitted_files: warn, absolute_links: warn, unrecognized_links: warn, "
        "anchors: warn}\n"
        "nav:\n  - Home: index.md\n  - Reproductions: reproductions/index.md\n")
    (root / "README.md").write_text("# Demo\n\nSee [the reproductions](reproductions/).\n")
    (root / "docs" / "index.md").write_text("<!-- generated: readme -->\n")
    (root / "docs" / "reproductions" / "index.md").write_text(
        "# Reproductions\n\n<!-- generated: reproductions -->\n")
    done = root / "reproductions" / "001-demo"
    done.mkdir(parents=True)
    (done / "cpu.toml").write_text('[study]\nname = "demo"\ndescription = "A demo | study"\n')
    (done / "RESULTS.md").write_text(
        "# Demo results\n\n![claim](claim1.png)\n\nSee [the runner](../../src/runner.py).\n")
    (done / "claim1.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    # Another page in the folder (001's PROTOCOL.md): served, so it must be in the nav too, or a
    # strict build fails on a page outside the nav.
    (done / "PROTOCOL.md").write_text("# Demo protocol\n")
    (root / "reproductions" / "002-pending").mkdir()


def test_reproduction_results_become_pages(hooks, tmp_path: Path) -> None:
    _fake_repo(tmp_path)
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    page = (site / "reproductions" / "001-demo" / "RESULTS" / "index.html").read_text()
    assert "Demo results" in page and "<code>src/runner.py</code>" in page
    assert (site / "reproductions" / "001-demo" / "claim1.png").is_file()
    assert "Demo protocol" in (site / "reproductions" / "001-demo" / "PROTOCOL" /
                               "index.html").read_text()
    listing = (site / "reproductions" / "index.html").read_text()
    assert "A demo \\| study" not in listing and "A demo | study" in listing
    assert "not run yet" in listing and "reproductions/002-pending" in listing
    assert 'href="001-demo/RESULTS/"' in listing
    assert "001-demo" in (site / "index.html").read_text()  # in the nav


def test_unknown_generated_block_fails_the_build(hooks, tmp_path: Path) -> None:
    _fake_repo(tmp_path)
    (tmp_path / "docs" / "index.md").write_text("<!-- generated: readmee -->\n")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d",
                           str(tmp_path / "site")], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode != 0 and "unknown generated block 'readmee'" in done.stderr
