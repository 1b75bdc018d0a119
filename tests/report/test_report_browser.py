"""report.html in headless Chromium: every image loads, the tables have the right row counts.

The page's own script marks each image's load status (``data-loaded``) and writes the counts onto
``#report-status`` after the load event; ``--dump-dom`` returns the DOM after that. A screenshot is
kept in ``test-artifacts/``. With ``CI=true`` a missing Chromium fails the test instead of skipping.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "test-artifacts"


def _chromium() -> str:
    for cand in (shutil.which("chromium"), "/usr/bin/chromium", shutil.which("chromium-browser")):
        if cand and Path(cand).is_file():
            return cand
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("chromium is required in CI (.ci/run installs the Debian package)")
    pytest.skip("chromium not installed (apt-get install chromium)")


def _run_chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / f"profile{len(list(tmp_path.glob('profile*')))}"
    cmd = [
        _chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={profile}", "--virtual-time-budget=10000", *args,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, f"chromium failed ({proc.returncode}): {proc.stderr[-2000:]}"
    return proc


class _DomProbe(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.status: dict[str, str] = {}
        self.images: list[dict[str, str]] = []

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        if a.get("id") == "report-status":
            self.status = a
        if tag == "img":
            self.images.append(a)


def _probe(tmp_path: Path, html: Path) -> _DomProbe:
    proc = _run_chromium(tmp_path, "--dump-dom", html.resolve().as_uri())
    probe = _DomProbe()
    probe.feed(proc.stdout)
    assert probe.status.get("data-ready") == "1", "the page's load handler did not run"
    return probe


@pytest.fixture
def rendered(full_report):
    return full_report


def test_every_image_loads_and_tables_have_one_row_per_variant_and_run(rendered, tmp_path):
    out, runs = rendered
    probe = _probe(tmp_path, out["html"])
    n_figures = len(list(out["figures"].glob("*.png")))
    assert int(probe.status["data-images-total"]) == n_figures == len(probe.images) > 10
    assert int(probe.status["data-images-loaded"]) == n_figures
    assert probe.status["data-images-failed"] == "0"
    assert all(img.get("data-loaded") == "true" for img in probe.images)
    assert int(probe.status["data-runs-rows"]) == len(runs)
    assert int(probe.status["data-leaderboard-rows"]) == len({r["variant"] for r in runs})

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report_screenshot.png"
    shot.unlink(missing_ok=True)
    _run_chromium(tmp_path, "--hide-scrollbars", "--window-size=1280,2000",
                  f"--screenshot={shot}", out["html"].resolve().as_uri())
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1280, 2000)


def test_a_broken_image_is_detected(rendered, tmp_path):
    # The check above must be able to fail: corrupt one embedded PNG and expect one failure.
    out, _ = rendered
    html = out["html"].read_text()
    broken = re.sub(r'(src="data:image/png;base64,)[A-Za-z0-9+/]{40}', r"\1" + "A" * 40, html,
                    count=1)
    assert broken != html
    page = tmp_path / "broken.html"
    page.write_text(broken)
    probe = _probe(tmp_path, page)
    assert probe.status["data-images-failed"] == "1"
    assert sum(img.get("data-loaded") == "false" for img in probe.images) == 1


def test_clicking_a_header_sorts_the_leaderboard(rendered, tmp_path):
    # Click "test_accuracy" once (ascending, missing values last) from a script run after load.
    out, runs = rendered
    html = out["html"].read_text()
    click = ("<script>window.addEventListener('load', function(){"
             "var hs = Array.prototype.slice.call(document.querySelectorAll('#leaderboard th'));"
             "hs.filter(function(h){return h.textContent === 'test_accuracy';})[0].click();"
             "});</script></body>")
    page = tmp_path / "sorted.html"
    page.write_text(html.replace("</body>", click, 1))
    dom = _run_chromium(tmp_path, "--dump-dom", page.resolve().as_uri()).stdout
    body = re.search(r'<table id="leaderboard".*?<tbody>(.*?)</tbody>', dom, re.S).group(1)
    keys = re.findall(r'<tr><td data-sort="[^"]*">\d+</td><td data-sort="[^"]*">[^<]*</td>'
                      r'<td data-sort="[^"]*">[^<]*</td><td data-sort="([^"]*)"', body)
    assert len(keys) == len({r["variant"] for r in runs})
    values = [float(k) for k in keys if k]
    assert values == sorted(values) and len(values) == len(keys) - 1
    assert keys[-1] == ""  # the variant without finished runs sorts last
