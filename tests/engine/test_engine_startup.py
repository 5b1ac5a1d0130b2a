"""Cheap start-up: a run imports only what it needs (issue 12 item 2).

``fedwave run`` must not import the report stack (matplotlib, pandas, report code), scipy, opacus,
pytorch_msssim, dp_accounting, nor ``torch._dynamo`` (which ``torch.optim``, ``FlopCounterMode`` and
``torch.func.grad`` import on first use and which costs seconds) or sympy (a vmapped loss's shape
checks). Checked in a fresh interpreter, after a whole run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = (
    "matplotlib",
    "pandas",
    "scipy",
    "opacus",
    "pytorch_msssim",
    "dp_accounting",
    "torch._dynamo",
    "sympy",
)

_SCRIPT = """
import json, sys
from fedwave.cli import main
code = main(["run", "-q", "-o", "model.name={model}", "-o", "fl.num_ues=4", "-o", "fl.rounds=2",
             "-o", "engine.executor={executor}", "--out", sys.argv[1]])
heavy = {heavy!r}
loaded = sorted(m for m in sys.modules if m in heavy or m.startswith("fedwave.report"))
print(json.dumps({{"code": code, "loaded": loaded}}))
"""


def _run_and_list_modules(tmp_path: Path, model: str, executor: str) -> dict[str, object]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    script = _SCRIPT.format(model=model, heavy=HEAVY, executor=executor)
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "run")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=True,
    )
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("executor", ["sequential", "batched"])
def test_run_imports_no_report_stack_and_no_dynamo(tmp_path: Path, executor: str) -> None:
    result = _run_and_list_modules(tmp_path, "2nn", executor)
    assert result["code"] == 0
    assert result["loaded"] == [], f"a plain run imported {result['loaded']}"
    assert (tmp_path / "run" / "summary.json").is_file()


def test_cli_import_is_light() -> None:
    code = "import sys, fedwave.cli; print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch',)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", "importing fedwave.cli must not import torch"
