"""The documentation site: built offline with warnings as errors; its references generated from the code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from tests.api.conftest import ROOT, subprocess_env

from fedwave.codecs import available_codecs
from fedwave.reference import command_paths, commands_reference, config_keys, config_reference


def test_config_reference_lists_every_key_with_type_default_range_and_comment() -> None:
    page = config_reference()
    rows = {line.split(" | ")[0].strip("| `"): line for line in page.splitlines() if line.startswith("| `")}
    keys = [(key, field) for key, field, is_section in config_keys() if not is_section]
    assert len(keys) > 100
    for key, field in keys:
        assert key in rows, f"{key} missing from the config reference"
        cells = [c.strip() for c in rows[key].strip("|").split(" | ")]
        assert len(cells) == 5 and cells[1], rows[key]
        if field.description:
            assert cells[4] == field.description.replace("|", "\\|").replace("\n", " ")
    assert "| `fl.rounds` | int | `20` | >= 1 | communication rounds" in page
    assert "| `fl.fraction` | float | `1.0` | > 0.0, <= 1.0 |" in page
    assert "| `data.root` | str \\| null | null |" in page


def test_commands_reference_has_every_command() -> None:
    page = commands_reference()
    assert {"run", "compare", "attack", "privacy", "bench codecs", "study restart"} <= set(command_paths())
    for path in command_paths():
        assert f"## `fedwave {path}`" in page
        assert f"usage: fedwave {path}" in page


def test_docs_build_strict_offline(tmp_path: Path) -> None:
    site = tmp_path / "site"
    cmd = [
        sys.executable,
        "-m",
        "mkdocs",
        "build",
        "--strict",
        "-f",
        str(ROOT / "mkdocs.yml"),
        "-d",
        str(site),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env(), cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    config_page = (site / "reference" / "config" / "index.html").read_text()
    for key, _, _ in config_keys():
        assert f"<code>{key}</code>" in config_page, key
    codecs_page = (site / "reference" / "codecs" / "index.html").read_text()
    for info in available_codecs():
        assert info.description.split(" ")[0] in codecs_page
    api_page = (site / "reference" / "api" / "index.html").read_text()
    for name in ("fedwave.api.run", "fedwave.api.make_config", "fedwave.plugins.register_codec"):
        assert name in api_page
    for page in site.rglob("*.html"):  # the site loads nothing from the network when viewed either
        head = page.read_text().split("<body")[0]
        assert "https://" not in head and "http://" not in head, page


def test_a_broken_reference_fails_the_strict_build(tmp_path: Path) -> None:
    """A link to a page that does not exist is a warning, and --strict turns it into a failure."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# x\n\nSee [the missing page](missing.md).\n")
    (tmp_path / "mkdocs.yml").write_text("site_name: t\ntheme:\n  name: mkdocs\n")
    cmd = [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")]
    out = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env(), cwd=tmp_path, timeout=120)
    assert out.returncode != 0 and "missing.md" in out.stderr


@pytest.mark.parametrize("page", ["concepts.md", "radio.md", "reproducibility.md", "library.md"])
def test_written_pages_exist(page: str) -> None:
    assert len((ROOT / "docs" / page).read_text().split()) > 300
