"""fedwave's training on a GPU against the CPU, case by case (a check for a machine with CUDA).

    python scripts/gpu_check.py [--device cuda] [--rounds 3] [--json FILE]

Each case (model x executor x codec x privacy, the default scenario otherwise, 20 UEs, half selected a
round) runs once with ``engine.device=cpu`` and twice with ``engine.device=DEVICE``. Printed per case:
the final accuracy on each device, the largest absolute difference between the CPU's and the device's
final model parameters, whether the device's two runs gave bit-identical models and round records, and
the wall time of each run. A case that raises is reported with its exception and the others still run.

fedwave itself makes a CUDA run deterministic and IEEE float32 (:mod:`fedwave.engine.device`).

Exit status: 0 when every case ran on the device and its two runs were bit-identical; 1 otherwise;
2 when the device is not available (``--device cpu`` exercises the script on any machine: then the
"device" runs are CPU runs too).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import traceback
from collections.abc import Sequence
from typing import Any

import torch

from fedwave.config import load_config
from fedwave.fl.run import build_simulation, model_digest

BASE = ["fl.num_ues=20", "fl.fraction=0.5"]

CASES: dict[str, list[str]] = {
    "convnet sequential fp32": ["engine.executor=sequential"],
    "convnet batched fp32": ["engine.executor=batched"],
    "2nn batched fp32": ["model.name=2nn", "engine.executor=batched"],
    "2nn sequential ef(topk:0.01)": ["model.name=2nn", "codec.uplink=ef(topk:0.01)"],
    "cnn batched qsgd:16": ["model.name=cnn", "engine.executor=batched", "codec.uplink=qsgd:16"],
    "resnet batched fp32": ["model.name=resnet", "engine.executor=batched"],
    "2nn batched clipped": [
        "model.name=2nn",
        "engine.executor=batched",
        "local_privacy.per_example_clipping=0.5",
    ],
    "2nn batched dp sample": [
        "model.name=2nn",
        "engine.executor=batched",
        "dp.level=sample",
        "dp.noise_multiplier=1.0",
    ],
    "2nn batched aircomp": ["model.name=2nn", "engine.executor=batched", "wireless.access.scheme=aircomp"],
    "convnet batched label_flip async": [
        "engine.executor=batched",
        "adversary.attack=label_flip",
        "adversary.fraction=0.2",
        "wireless.policy.name=async",
    ],
    "2nn batched alie tdma": [
        "model.name=2nn",
        "engine.executor=batched",
        "adversary.attack=alie",
        "adversary.fraction=0.2",
        "wireless.access.scheme=tdma",
    ],
    "convnet sequential dp client": ["fl.sampling=poisson", "dp.level=client", "dp.noise_multiplier=0.5"],
}


def run_once(overrides: Sequence[str], device: str, rounds: int) -> dict[str, Any]:
    """One run; its final model (on the CPU), digest, round records, accuracy and wall seconds."""
    cfg = load_config(None, [*BASE, *overrides, f"fl.rounds={rounds}", f"engine.device={device}"])
    t0 = time.perf_counter()
    sim = build_simulation(cfg)
    sim.run_rounds(rounds)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    model = sim.driver.bs.model  # the BS keeps its model on the CPU; the UEs train on ``device``
    where = {p.device.type for p in sim.driver.users[0].model.parameters()}
    records = [r.as_dict() for r in sim.driver.records]
    return {
        "state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "digest": model_digest(model),
        "records": records,
        "accuracy": records[-1]["accuracy"] if records else math.nan,
        "seconds": seconds,
        "trained_on": sorted(where),
    }


def largest_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """Largest absolute difference between two state dicts' float tensors."""
    out = 0.0
    for k, v in a.items():
        if v.is_floating_point():
            out = max(out, float((v.double() - b[k].double()).abs().max()))
    return out


def check(name: str, overrides: Sequence[str], device: str, rounds: int) -> dict[str, Any]:
    """Run one case on the CPU and twice on ``device``; the figures as a dict (``error`` on failure)."""
    row: dict[str, Any] = {"case": name, "overrides": list(overrides)}
    try:
        cpu = run_once(overrides, "cpu", rounds)
        first = run_once(overrides, device, rounds)
        second = run_once(overrides, device, rounds)
    except Exception as exc:  # a case that fails is reported; the other cases still run
        row["error"] = f"{type(exc).__name__}: {exc}"
        row["traceback"] = traceback.format_exc()
        return row
    row.update(
        accuracy_cpu=cpu["accuracy"],
        accuracy_device=first["accuracy"],
        max_param_diff=largest_difference(cpu["state"], first["state"]),
        bit_identical=first["digest"] == second["digest"] and first["records"] == second["records"],
        seconds_cpu=cpu["seconds"],
        seconds_device=[first["seconds"], second["seconds"]],
        trained_on=first["trained_on"],
    )
    return row


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="torch device to check against the CPU")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--case", action="append", help="only these cases (by name; repeatable)")
    p.add_argument("--json", help="also write the rows to this file")
    args = p.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_check: CUDA is not available here; run it on a machine with a GPU", file=sys.stderr)
        return 2
    if args.device.startswith("cuda"):
        print(f"device: {torch.cuda.get_device_name(args.device)}, torch {torch.__version__}")
    rows = []
    for name, overrides in CASES.items():
        if args.case and name not in args.case:
            continue
        row = check(name, overrides, args.device, args.rounds)
        rows.append(row)
        if "error" in row:
            print(f"{name:<32} FAILED {row['error']}\n{row['traceback']}", flush=True)
            continue
        print(
            f"{name:<32} acc cpu {row['accuracy_cpu']:.4f} {args.device} {row['accuracy_device']:.4f}  "
            f"max |diff| {row['max_param_diff']:.3g}  bit-identical twice: {row['bit_identical']}  "
            f"s: cpu {row['seconds_cpu']:.1f} {args.device} "
            + " ".join(f"{s:.1f}" for s in row["seconds_device"])
            + f"  UEs trained on {','.join(row['trained_on'])}",
            flush=True,
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2)
    ok = all("error" not in r and r["bit_identical"] for r in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
