"""Render the HTML report in headless Chromium: the DOM holds the figures and tables, the console stays
quiet, and the screenshot is not blank. Run ``scripts/setup-test-deps.sh`` to install Chromium."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
WIDTH, HEIGHT = 1280, 2000
N_FIGURES = 6

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="/usr/bin/chromium is missing: run scripts/setup-test-deps.sh to install it",
)


def chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        str(CHROMIUM),
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--log-level=0",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False)


def page_errors(stderr: str, url: str) -> list[str]:
    """Console messages about the page (JS errors, CSP violations, failed loads) found in stderr."""
    bad = re.compile(r"CONSOLE|Uncaught|Refused to|violates the following|Failed to load|net::ERR_")
    return [line for line in stderr.splitlines() if bad.search(line) and (url in line or "CONSOLE" in line)]


@pytest.fixture(scope="module")
def rendered(report_path: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str, str]:
    out = tmp_path_factory.mktemp("browser")
    report = report_path
    url = report.resolve().as_uri()
    shot = out / "screenshot.png"
    # one render: the DOM after loading goes to stdout, the screenshot to a file
    done = chromium(
        out / "profile", "--dump-dom", f"--screenshot={shot}", f"--window-size={WIDTH},{HEIGHT}", url
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return report, shot, done.stdout, done.stderr


def test_dom_after_rendering(rendered: tuple[Path, Path, str, str]) -> None:
    _, _, dom, _ = rendered
    assert len(re.findall(r'<img src="data:image/png;base64,', dom)) == N_FIGURES
    assert dom.count('<table class="summary">') == 1 and dom.count('<table class="runs">') == 1
    assert re.search(r"<h1>fedwave study: synthetic</h1>", dom)
    assert dom.count("<details>") >= 3


def test_no_page_errors_in_console(rendered: tuple[Path, Path, str, str]) -> None:
    report, _, _, stderr = rendered
    assert page_errors(stderr, report.resolve().as_uri()) == []


def test_screenshot_is_not_blank(rendered: tuple[Path, Path, str, str]) -> None:
    from PIL import Image

    _, shot, _, stderr = rendered
    assert shot.exists() and shot.stat().st_size > 10_000, stderr[-2000:]
    with Image.open(shot) as im:
        assert im.size == (WIDTH, HEIGHT)
        rgb = im.convert("RGB")
        # eight horizontal bands down the page: header, table, figures ... each holds content
        band = HEIGHT // 8
        for i in range(8):
            region = rgb.crop((0, i * band, WIDTH, (i + 1) * band))
            colors = region.getcolors(maxcolors=1 << 16)
            assert colors is None or len(colors) > 1, f"band {i} is a single colour"
        # the figures bring colour: many distinct colours over the page
        whole = rgb.getcolors(maxcolors=1 << 20)
        assert whole is None or len(whole) > 200
