"""Synthetic studies for the report tests: plausible RoundRecords and UEEvents, no training."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from types import ModuleType

import matplotlib
import numpy as np
import pytest

from fedwave.records import RoundRecord, UEEvent
from fedwave.report.store import ResultsStore

matplotlib.use("Agg")

METHODS = {
    # method label -> (bytes per update, compute seconds, accuracy ceiling)
    "codec=fp32": (400_000, 0.8, 0.92),
    "codec=qsgd:16": (50_000, 0.8, 0.90),
}
N_UES = 6
N_ROUNDS = 10
SEEDS = (0, 1)


def make_round(method: str, seed: int, rnd: int, t0: float) -> tuple[RoundRecord, list[UEEvent]]:
    """One plausible round starting at simulated time ``t0`` (s) with :data:`N_UES` UEs."""
    size, compute, ceiling = METHODS[method]
    rng = np.random.default_rng([seed, rnd, len(method)])
    events = []
    for ue in range(N_UES):
        dl_end = t0 + 0.05 + 0.02 * rng.random()
        c_end = dl_end + compute * (0.7 + 0.6 * rng.random())
        up_start = c_end + 0.1 * rng.random()
        rate = float(rng.uniform(2e6, 20e6))
        up_end = up_start + size * 8 / rate
        status = (
            ["arrived", "arrived", "arrived", "dropped", "lost", "skipped"][int(rng.integers(0, 6))]
            if ue >= 3
            else "arrived"
        )
        events.append(
            UEEvent(
                round=rnd,
                ue=ue,
                status=status,
                t_download_start=t0,
                t_download_end=dl_end,
                t_compute_start=dl_end,
                t_compute_end=c_end,
                t_upload_start=up_start,
                t_upload_end=up_end,
                bytes_up=size if status != "skipped" else 8,
                bytes_down=400_000,
                samples=int(rng.integers(100, 600)),
                rate_up_bps=rate,
                snr_up_db=float(rng.normal(10, 4)),
                attempts=1 + int(status == "lost"),
                staleness=0,
                energy_compute_j=0.5 * (c_end - dl_end),
                energy_radio_j=0.2 * (up_end - up_start) + 0.05,
            )
        )
    # the round closes after the last update that counts; late (dropped) uploads end after it
    t_end = max(e.t_upload_end for e in events if e.status != "dropped") + 0.01
    for e in events:
        if e.status == "dropped":
            e.t_upload_end = max(e.t_upload_end, t_end + 0.05 + 0.2 * float(rng.random()))
    arrived = [e for e in events if e.status == "arrived"]
    acc = ceiling * (1 - np.exp(-(rnd + 1) / 3)) + 0.01 * rng.standard_normal()
    record = RoundRecord(
        round=rnd,
        t_start=t0,
        t_end=t_end,
        time_compute=max(e.t_compute_end - e.t_compute_start for e in events),
        time_uplink=max(e.t_upload_end - e.t_upload_start for e in events),
        time_downlink=max(e.t_download_end - e.t_download_start for e in events),
        time_wait=0.05,
        bytes_up=sum(e.bytes_up for e in events),
        bytes_down=sum(e.bytes_down for e in events),
        selected=N_UES,
        arrived=len(arrived),
        dropped=sum(e.status == "dropped" for e in events),
        lost=sum(e.status == "lost" for e in events),
        skipped=sum(e.status == "skipped" for e in events),
        samples=sum(e.samples for e in arrived),
        energy_j=sum(e.energy_compute_j + e.energy_radio_j for e in events),
        accuracy=float(acc),
        loss=float(2.3 * (1 - acc)),
        epsilon=None if rnd % 2 else 0.1 * rnd,
        extra={"grad_norm": float(rng.random())},
    )
    return record, events


def write_study(study_dir: Path, methods: tuple[str, ...] = tuple(METHODS), n_rounds: int = N_ROUNDS) -> Path:
    """Write a complete synthetic study (methods x :data:`SEEDS` x ``n_rounds``) into ``study_dir``."""
    spec = {"base": {"model": "mlp", "rounds": n_rounds}, "varied": ["codec"], "seeds": list(SEEDS)}
    with ResultsStore(study_dir) as store:
        store.ensure_study("synthetic", spec)
        for method in methods:
            for seed in SEEDS:
                run_id = f"{method}|seed={seed}"
                codec = method.split("=", 1)[1]
                config = {"model": "mlp", "codec": codec, "seed": seed, "ues": N_UES}
                store.ensure_run(run_id, method, seed, config, {"codec": codec})
                store.set_status(run_id, "running")
                t = 0.0
                for rnd in range(n_rounds):
                    record, events = make_round(method, seed, rnd, t)
                    store.commit_round(run_id, record, events, f"ckpt{rnd}".encode())
                    t = record.t_end
                store.set_status(run_id, "done")
    return study_dir


VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Structure(HTMLParser):
    """Checks that non-void elements nest and close properly; collects tags and attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.doctype = ""

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
        else:
            self.stack.pop()


@pytest.fixture(scope="session")
def study_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic study written once per test session (treat as read-only)."""
    return write_study(tmp_path_factory.mktemp("study"))


@pytest.fixture(scope="session")
def report_path(study_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The HTML report of a copy of the synthetic study, written to its default place (target 0.8)."""
    from fedwave.report.html import write_report

    copy = tmp_path_factory.mktemp("reported") / "study"
    shutil.copytree(study_dir, copy)
    return write_report(copy, target_accuracy=0.8)


@pytest.fixture(name="make_round")
def make_round_fixture() -> Callable[[str, int, int, float], tuple[RoundRecord, list[UEEvent]]]:
    """:func:`make_round` as a fixture."""
    return make_round


@pytest.fixture(scope="session")
def synth() -> ModuleType:
    """This module: :func:`make_round`, :func:`write_study`, :class:`Structure` and the constants, for the
    test files."""
    return sys.modules[__name__]
