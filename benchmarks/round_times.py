"""Distribution of simulated round durations over many clock-only rounds (no training).

    python benchmarks/round_times.py [--rounds 2000] [-o key=value ...]

The default scenario's cell and devices (20 UEs, every UE each round, sync policy) with each UE sending
the fp32 message of the default ``convnet`` (its real encoded length) and processing its share of the
digits training set. Prints the median, 99th percentile and maximum round duration (simulated s), the
share of all simulated time spent in the slowest 1 % of rounds, and the final simulated time.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence

import numpy as np
import torch

from fedwave.codecs import get_codec
from fedwave.config import load_config
from fedwave.data.federated import dataset_for
from fedwave.devices import training_flops_per_sample
from fedwave.models import build_model
from fedwave.records import RoundRecord, UEEvent
from fedwave.sim import Arrival, Clock, LocalResult


class _Fixed:
    def __init__(self, payload: int, samples: int) -> None:
        self.payload, self.samples = payload, samples
        self.records: list[RoundRecord] = []

    def select(self, round: int, available: Sequence[int], count: int) -> list[int]:
        return list(available)[:count]

    def broadcast_bytes(self) -> int:
        return self.payload

    def local_updates(self, round: int, ues: Sequence[int], version: int) -> list[LocalResult]:
        return [LocalResult(payload_bytes=self.payload, samples_processed=self.samples) for _ in ues]

    def discard(self, handles: list[object], reason: str) -> None:
        return None

    def aggregate(self, round: int, arrivals: list[Arrival]) -> None:
        return None

    def end_round(self, record: RoundRecord, events: list[UEEvent]) -> bool:
        self.records.append(record)
        return True


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=2000)
    p.add_argument("-o", "--override", action="append", default=[])
    args = p.parse_args(argv)
    cfg = load_config(None, args.override)
    ds = dataset_for(cfg)
    torch.manual_seed(0)
    model = build_model(cfg.model.name, tuple(ds.input_shape), ds.num_classes)
    payload = len(get_codec("fp32").encode([q.detach() for q in model.parameters()], rng=torch.Generator()))
    flops = training_flops_per_sample(model, tuple(ds.input_shape), ds.num_classes)
    samples = cfg.fl.local_epochs * (len(ds.y_train) // cfg.fl.num_ues)
    clock = Clock(cfg.wireless, cfg.fl.num_ues, flops, cfg.seed)
    driver = _Fixed(payload, samples)
    t_end = clock.run(driver, args.rounds, cfg.fl.per_round())
    d = np.array([r.t_end - r.t_start for r in driver.records])
    worst = np.sort(d)[::-1][: max(1, math.ceil(0.01 * len(d)))]
    print(f"rounds {len(d)}, payload {payload} B, {samples} samples/UE, overrides {args.override or '-'}")
    print(f"round duration (s): median {np.median(d):.4g}, p99 {np.percentile(d, 99):.4g}, max {d.max():.4g}")
    print(f"slowest 1% of rounds hold {worst.sum() / d.sum():.1%} of simulated time; end t = {t_end:.6g} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
