"""scripts/mutate.py: its table applies to the current code, and it classifies runs correctly."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fedwave_mutate_script", ROOT / "scripts" / "mutate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


mutate = _load()


@pytest.mark.parametrize("m", mutate.MUTATIONS, ids=lambda m: m.name)
def test_every_mutation_applies_to_the_current_code(m: object, tmp_path: Path) -> None:
    """Each replacement's old text occurs exactly once (a stale table would fail here, not silently),
    and every test selection exists."""
    for edit in m.edits:  # type: ignore[attr-defined]
        target = tmp_path / edit.file
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / edit.file, target)
    before = {e.file: (tmp_path / e.file).read_text() for e in m.edits}  # type: ignore[attr-defined]
    mutate.apply(tmp_path, m.edits)  # type: ignore[attr-defined]
    assert all((tmp_path / f).read_text() != text for f, text in before.items())
    for selection in m.tests:  # type: ignore[attr-defined]
        assert (ROOT / selection.split("::")[0]).exists(), selection


def test_names_are_unique() -> None:
    names = [m.name for m in mutate.MUTATIONS]
    assert len(names) == len(set(names))


def _mini_repo(root: Path) -> None:
    (root / "src" / "mini").mkdir(parents=True)
    (root / "src" / "mini" / "__init__.py").write_text("")
    (root / "src" / "mini" / "calc.py").write_text("def double(x):\n    return 2 * x  # times two\n")
    (root / "tests").mkdir()
    (root / "tests" / "test_calc.py").write_text(
        "from mini.calc import double\n\n\ndef test_double():\n    assert double(3) == 6\n"
    )
    (root / "pyproject.toml").write_text('[tool.pytest.ini_options]\ntestpaths = ["tests"]\n')


def test_a_stale_mutation_is_an_error(tmp_path: Path) -> None:
    """Old text that is not in the file exactly once is an ERROR, before any test runs."""
    _mini_repo(tmp_path)
    stale = mutate.Edit("src/mini/calc.py", "return 4 * x", "return 3 * x")
    result = mutate.run(tmp_path, "m", (stale,), ("tests",), sys.executable, mutate.PYTEST_ARGS, 120)
    assert result.status == "ERROR"
    assert "occurs 0 times" in result.tail


@pytest.mark.slow
def test_runs_are_classified(tmp_path: Path) -> None:
    """A mutation the test sees is killed, one it cannot see survives, and the unmutated baseline
    passes; the repository itself is left as it was (three pytest subprocesses)."""
    _mini_repo(tmp_path)
    tests = ("tests/test_calc.py",)

    def run(*edits: object) -> str:
        result = mutate.run(tmp_path, "m", edits, tests, sys.executable, mutate.PYTEST_ARGS, 120)
        return str(result.status)

    assert run() == "passed"
    assert run(mutate.Edit("src/mini/calc.py", "return 2 * x", "return 3 * x")) == "killed"
    assert run(mutate.Edit("src/mini/calc.py", "# times two", "# twice")) == "SURVIVED"
    assert "return 2 * x" in (tmp_path / "src" / "mini" / "calc.py").read_text()
