"""One full render of the fake study, shared by the file and browser tests (rendering is the slow
part; the tests only read its output)."""

from __future__ import annotations

import pytest
from report_fakes import make_study

from fuselab.report import render


@pytest.fixture(scope="session")
def full_report(tmp_path_factory):
    study, runs, records = make_study()
    out = render(study, runs, records, tmp_path_factory.mktemp("report"), strict=True)
    return out, runs
