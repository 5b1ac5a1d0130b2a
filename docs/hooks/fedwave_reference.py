"""MkDocs hook: replace the reference pages' markers with Markdown generated from fedwave's code.

See :mod:`fedwave.reference`. The repository's ``src`` is put first on ``sys.path`` so the pages describe
this checkout, not another installed copy.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any


def on_config(config: Any) -> Any:
    src = str(Path(config.config_file_path).resolve().parent / "src")
    if src not in sys.path:
        sys.path.insert(0, src)
    return config


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    from fedwave.reference import MARKERS

    for marker, generate in MARKERS.items():
        if marker in markdown:
            markdown = markdown.replace(marker, generate())
    return markdown
