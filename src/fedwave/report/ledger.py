"""The ledger: one small file per run, beside the database, counting the rounds it committed.

SQLite in WAL mode keeps recent transactions in ``study.db-wal`` until they are copied into ``study.db``.
If that file is deleted or lost, the database silently falls back to an older state. The ledger lets a
study notice: after each committed round (or attack result) the run's file ``ledger/<run>.json`` is
replaced (atomically) with the number of rounds (and attack results) the database held after the
commit. A database holding fewer rounds (or attack results) of a run than its ledger says has lost
committed rows.

Ordering keeps the ledger at or below the database at every instant, so a crash never causes a false
alarm: a commit writes the ledger *after* the transaction, a deletion lowers the ledger *before* it.
The files hold the run's id, method and seed (no paths), so a study directory can be moved.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from fedwave.report.errors import StoreError

#: Name of the ledger folder inside a study directory.
LEDGER_DIR = "ledger"

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class LedgerEntry:
    """What the ledger knows of one run: ``rounds`` committed, the last being ``last_round`` (-1: none),
    and ``attacks`` attack results committed (0 or 1; absent in entries written before attacks)."""

    run_id: str
    method: str
    seed: int
    rounds: int
    last_round: int
    attacks: int = 0


def entry_path(study_dir: Path, run_id: str) -> Path:
    """The ledger file of ``run_id`` (a readable prefix of the id plus a hash, safe as a file name)."""
    digest = hashlib.sha256(run_id.encode()).hexdigest()[:12]
    stem = _UNSAFE.sub("_", run_id)[:40].strip("._") or "run"
    return study_dir / LEDGER_DIR / f"{stem}-{digest}.json"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # platforms that cannot open a directory: the rename is durable enough there
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_entry(study_dir: Path, entry: LedgerEntry, *, durable: bool = False) -> None:
    """Replace the run's ledger file atomically (write, fsync, rename).

    ``durable`` also syncs the folder, so the new entry survives a power cut before anything that
    follows (needed when the entry is lowered ahead of a deletion, not when it follows a commit).
    """
    path = entry_path(study_dir, entry.run_id)
    try:
        path.parent.mkdir(exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        text = json.dumps(entry.__dict__, sort_keys=True)
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        if durable:
            _fsync_dir(path.parent)
    except OSError as exc:
        raise StoreError(f"cannot write the ledger file {path}: {exc}") from exc


def remove_entry(study_dir: Path, run_id: str) -> None:
    """Delete the run's ledger file (restarting a run); nothing if it has none."""
    path = entry_path(study_dir, run_id)
    try:
        if path.exists():
            path.unlink()
            _fsync_dir(path.parent)
    except OSError as exc:
        raise StoreError(f"cannot remove the ledger file {path}: {exc}") from exc


def read_entries(study_dir: Path) -> list[LedgerEntry]:
    """Every ledger entry of the study (none if it has no ledger), sorted by run id.

    A file that is not a ledger entry raises :class:`StoreError` naming it.
    """
    folder = study_dir / LEDGER_DIR
    if not folder.is_dir():
        return []
    entries = []
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            entry = LedgerEntry(
                run_id=str(data["run_id"]),
                method=str(data["method"]),
                seed=int(data["seed"]),
                rounds=int(data["rounds"]),
                last_round=int(data["last_round"]),
                attacks=int(data.get("attacks", 0)),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StoreError(
                f"ledger file {path} is unreadable ({type(exc).__name__}: {exc}); it only guards against "
                "lost rounds: delete it to go on without that check for its run"
            ) from exc
        entries.append(entry)
    return sorted(entries, key=lambda e: e.run_id)
