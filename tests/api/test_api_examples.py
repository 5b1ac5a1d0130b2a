"""Every example runs; the notebook runs on a Jupyter kernel of this interpreter and is stored stripped."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tests.api.conftest import EXAMPLES, subprocess_env


def _run(script: str, cwd: Path, *args: str) -> str:
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        capture_output=True,
        text=True,
        env=subprocess_env(EXAMPLES),
        cwd=cwd,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_custom_model_example(tmp_path: Path) -> None:
    out = _run("custom_model.py", tmp_path)
    lines = out.splitlines()
    assert lines[0].split() == ["round", "accuracy", "t_end", "bytes_up"]
    assert [line.split()[0] for line in lines[1:4]] == ["0", "1", "2"]
    final = float(out.split("final accuracy ")[1].split()[0])
    assert 0.5 < final <= 1.0


def test_custom_codec_example(tmp_path: Path) -> None:
    out = _run("custom_codec.py", tmp_path)
    assert "contract passed: round_trip" in out and "error_bound" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:]}
    fp32, int8 = rows["codec=fp32"], rows["codec=int8_codec:Int8Codec"]
    assert 0.24 < int(int8[3]) / int(fp32[3]) < 0.26  # bytes_up: 1 byte per value instead of 4


def test_study_plot_example(tmp_path: Path) -> None:
    out = _run("study_plot.py", tmp_path, "out")
    png = tmp_path / "out" / "accuracy_vs_time.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert len([line for line in out.splitlines() if line.strip().startswith("codec=")]) == 4


def _notebook() -> dict[str, object]:
    data: dict[str, object] = json.loads((EXAMPLES / "notebook.ipynb").read_text())
    return data


def test_notebook_is_stored_without_outputs() -> None:
    cells = _notebook()["cells"]
    assert isinstance(cells, list) and len(cells) > 3
    for cell in cells:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None


def test_notebook_executes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    # a kernel spec of this very interpreter, found first (a "python3" spec elsewhere may be another one)
    spec = tmp_path / "jupyter" / "kernels" / "fedwave-test"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "fedwave", "language": "python"})
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    for key, value in subprocess_env(EXAMPLES).items():
        monkeypatch.setenv(key, value)
    nb = nbformat.read(EXAMPLES / "notebook.ipynb", as_version=4)
    client = nbclient.NotebookClient(
        nb, kernel_name="fedwave-test", timeout=240, resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "final accuracy" in text
    assert any("image/png" in o.get("data", {}) for o in outputs)
