"""fedwave.report: the results store, tables, plots and the HTML report.

The path of results: the round loop commits records to a :class:`ResultsStore` (``study.db`` in a study
directory); :func:`load_study` reads them back read-only; :mod:`~fedwave.report.tables`,
:mod:`~fedwave.report.plots` and :func:`write_report` turn a study into numbers, figures and one HTML
file. The plotting modules (matplotlib) are imported only when used.

Every stored round carries a digest and every checkpoint a SHA-256, and a ledger beside the database
counts committed rounds (:mod:`~fedwave.report.integrity`): tables and reports refuse a damaged study
with :class:`DamagedStudyError`, which names the runs and rounds and the command that restarts them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fedwave.report.errors import DamagedStudyError
from fedwave.report.store import ResultsStore, StoreError
from fedwave.report.study import Study, load_study
from fedwave.report.tables import format_table, summary_table, write_csv

if TYPE_CHECKING:
    from fedwave.report.html import write_report

__all__ = [
    "DamagedStudyError",
    "ResultsStore",
    "StoreError",
    "Study",
    "format_table",
    "load_study",
    "summary_table",
    "write_csv",
    "write_report",
]


def __getattr__(name: str) -> Any:
    if name == "write_report":
        from fedwave.report.html import write_report

        return write_report
    raise AttributeError(f"module 'fedwave.report' has no attribute {name!r}")
