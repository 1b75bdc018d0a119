"""The base install (`pip install -e .`) must work without the optional extras (hf, ray, sql,
tracking, search)."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import sys
for name in ("transformers", "ray", "sqlalchemy", "tensorboard", "mlflow", "psycopg", "optuna"):
    sys.modules[name] = None          # importing any of them now raises ImportError
import fuselab as fl
import fuselab.cli, fuselab.evaluate, fuselab.report, fuselab.study.runner, fuselab.train
import fuselab.search
try:
    fuselab.search.run_search("no-such.toml")
except ImportError as err:
    assert "fuselab[search]" in str(err), err
else:
    raise AssertionError("a search without optuna must name the missing extra")
model = fl.models.build(
    {"name": "token_fusion", "fusion_spec": {"0": ["question"], "1": ["image"]},
     "num_layers": 2, "d_model": 16, "num_heads": 2},
    input_shapes={"question": (8,), "image": (3, 32, 32)}, num_outputs=20)
assert fuselab.cli.main(["operators"]) == 0
try:
    fl.models.build(
        {"name": "token_fusion", "fusion_spec": {"0": ["question"]}, "trunk": "t5"},
        input_shapes={"question": (8,)}, num_outputs=20)
except ModuleNotFoundError as err:
    assert "fuselab[hf]" in str(err), err
else:
    raise AssertionError("a T5 trunk without transformers must name the missing extra")
print("base install OK")
"""


def test_base_install_needs_no_optional_extra() -> None:
    proc = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "base install OK" in proc.stdout
