"""The HTML report: one self-contained, well-formed HTML5 file with the figures and tables."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pytest

from fedwave.report.html import write_report

N_FIGURES = 6


@pytest.fixture
def report(report_path: Path) -> Path:
    return report_path


def test_default_location(report: Path) -> None:
    assert report.name == "report.html" and (report.parent / "study.db").is_file()
    assert not list(report.parent.glob("*.tmp"))


def test_explicit_location_and_missing_study(study_dir: Path, tmp_path: Path) -> None:
    from fedwave.errors import FedwaveError

    with pytest.raises(FedwaveError, match="not a study directory"):
        write_report(tmp_path, tmp_path / "x.html")


def test_report_is_well_formed_html5(report: Path, synth: Any) -> None:
    text = report.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    parser = synth.Structure()
    parser.feed(text)
    parser.close()
    assert parser.doctype.lower() == "doctype html"
    assert parser.errors == [] and parser.stack == []
    tags = [t for t, _ in parser.tags]
    assert tags[:3] == ["html", "head", "meta"]
    assert tags.count("title") == 1 and tags.count("h1") == 1
    ids = [a["id"] for _, a in parser.tags if a.get("id")]
    assert len(ids) == len(set(ids)), "element ids are unique"


def test_report_is_self_contained(report: Path, synth: Any) -> None:
    parser = synth.Structure()
    parser.feed(report.read_text(encoding="utf-8"))
    for tag, attrs in parser.tags:
        assert tag not in {"script", "link", "iframe"}, tag
        for key in ("src", "href"):
            value: Any = attrs.get(key)
            if value:
                assert value.startswith(("data:", "#")), f"<{tag} {key}={value[:40]}>"
    assert "http://" not in report.read_text() and "https://" not in report.read_text()


def test_report_holds_figures_and_tables(report: Path, synth: Any) -> None:
    text = report.read_text(encoding="utf-8")
    imgs = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)" alt="([^"]+)"', text)
    assert len(imgs) == N_FIGURES
    for data, alt in imgs:
        assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n" and alt
    assert text.count("<svg") == 0
    assert text.count('<table class="summary">') == 1 and text.count('<table class="runs">') == 1
    for method in synth.METHODS:
        assert text.count(f"<summary>{method}") == 1, "one collapsed config per method"
    assert '<p class="caption">target accuracy 0.80; baseline: codec=fp32</p>' in text
    runs_table = text.split('<table class="runs">')[1].split("</table>")[0]
    assert runs_table.count("<tr>") == 1 + len(synth.METHODS) * len(synth.SEEDS)
    for name in ("python", "torch", "numpy", "fedwave", "platform"):
        assert f'<td class="text">{name}</td>' in text


def test_report_command_takes_the_baseline_of_the_speed_ups(study_dir: Path, tmp_path: Path) -> None:
    from fedwave.cli import main

    out = tmp_path / "r.html"
    assert main(["report", str(study_dir), "--out", str(out), "--baseline", "codec=qsgd:16"]) == 0
    text = out.read_text(encoding="utf-8")
    assert "baseline: codec=qsgd:16" in text and "baseline: codec=fp32" not in text
    assert main(["report", str(study_dir), "--out", str(out)]) == 0  # default: the fp32 method
    assert "baseline: codec=fp32" in out.read_text(encoding="utf-8")
