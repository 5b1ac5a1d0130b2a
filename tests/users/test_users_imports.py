"""One home per concept: ``fedwave.users`` never imports ``fedwave.data`` at import time."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import fedwave.data.federated as federated
import fedwave.users as users
from fedwave.users.datasource import UserDataSource

SRC = Path(users.__file__).resolve().parents[1]


def _module_level_imports(path: Path) -> set[str]:
    """Modules imported by top-level statements (not inside functions) of a source file."""
    found: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_users_package_does_not_import_data_at_import_time() -> None:
    for path in sorted((SRC / "users").glob("*.py")):
        bad = {m for m in _module_level_imports(path) if m == "fedwave.data" or m.startswith("fedwave.data.")}
        assert not bad, f"{path.name} imports {bad} at import time"
    code = "import sys, fedwave.users; print(sorted(m for m in sys.modules if m.startswith('fedwave.data')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_federated_imports_only_the_data_source_from_users() -> None:
    from_users = {
        m for m in _module_level_imports(SRC / "data" / "federated.py") if m.startswith("fedwave.users")
    }
    assert from_users == {"fedwave.users.datasource"}


def test_public_names_stay_importable() -> None:
    assert users.UserDataSource is UserDataSource is federated.UserDataSource
    for name in ("User", "construct_user", "MultiUserAggregate", "UserSingleStep", "UserMultiStep"):
        assert hasattr(users, name)


def test_construct_user_without_data_builds_it_from_the_config() -> None:
    from torch import nn

    from fedwave.config import Config

    cfg = Config()
    u = users.construct_user(
        nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), nn.CrossEntropyLoss(), cfg, users.make_setup()
    )
    source = federated.user_data_source(cfg)
    x, _ = source.user_data(0, "all")
    assert u.num_data_points == x.shape[0] and u.metadata["mean"] == source.metadata["mean"]
