"""The Python versions fuselab claims (pyproject ``requires-python``) are the ones it is checked on.

The claim's minimum must be what ruff and mypy check the code against (mypy knows, from typeshed,
which stdlib modules and functions exist in which version: ``tomllib`` is 3.11+), what the README
says, and satisfied by the interpreter running this suite (CI's).
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _minimum() -> tuple[int, int]:
    spec = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    m = re.fullmatch(r">=\s*3\.(\d+)", spec.strip())
    assert m, f"requires-python {spec!r}: expected '>=3.N'"
    return 3, int(m.group(1))


def test_checks_target_the_claimed_minimum() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    major, minor = _minimum()
    assert meta["tool"]["ruff"]["target-version"] == f"py{major}{minor}"
    assert meta["tool"]["mypy"]["python_version"] == f"{major}.{minor}"
    assert f"Python ≥ {major}.{minor}" in (ROOT / "README.md").read_text()
    assert sys.version_info[:2] >= (major, minor)


def test_no_import_needs_a_newer_python_than_claimed() -> None:
    # stdlib modules that appeared after 3.9, by the version that added them
    added = {"tomllib": (3, 11), "wsgiref.types": (3, 11), "zoneinfo": (3, 9),
             "graphlib": (3, 9), "annotationlib": (3, 14), "compression": (3, 14)}
    minimum = _minimum()
    for path in sorted((ROOT / "src").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                for module, version in added.items():
                    if name == module or name.startswith(module + "."):
                        assert version <= minimum, (
                            f"{path.relative_to(ROOT)}:{node.lineno} imports {name} (Python "
                            f"{version[0]}.{version[1]}+) but requires-python allows "
                            f"{minimum[0]}.{minimum[1]}")
