"""The ``backend`` fixture: every fused-op test runs on the native kernels and on the aten path."""

from __future__ import annotations

import pytest

from fuselab.ops import native


@pytest.fixture(params=["native", "aten"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("FUSELAB_NATIVE", "1" if request.param == "native" else "0")
    native.reset()
    if request.param == "native" and native.library() is None:
        pytest.skip("no C++ compiler: the native kernels cannot be built here")
    yield request.param
    native.reset()
