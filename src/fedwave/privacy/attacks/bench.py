"""Fidelity benchmark of the attacks: prints figures (``fedwave bench attacks``); not a test.

Every figure goes through the same path as ``fedwave attack`` (user -> codec -> attack -> metrics) on
fresh training samples drawn per trial from seed 0, on the untrained model of the config. Sections:

1. ``idlg`` labels: 100 single-sample batches on ``lenet`` (MNIST and digits); the count estimator on
   batches of 4.
2. ``analytic`` on ``mlp`` (first layer fully connected with bias), MNIST, batch 1 and batch 4.
3. ``dlg`` on ``lenet``, MNIST, batch 1, fp32, single step: median PSNR and wall time per image.
4. ``ig`` on the same: its default TV weight, and a sweep of TV weights (the measurement behind the default).
5. batches of 2 and 4: ``ig`` vs ``dlg``.
6. defences: the attack against codecs sign, topk:0.01, uniform:4 and Gaussian gradient noise
   (clip C = ``--clip``, noise std z C with z = 1: users.md's ``per_example_clipping`` and
   ``gradient_noise``), and the PSNR ordering.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import Any

import torch

from fedwave.config import Config, config_from_dict
from fedwave.privacy.attacks.base import resolve_labels
from fedwave.privacy.attacks.observation import Observation, ServerView
from fedwave.privacy.attacks.runner import AttackRun, attacked_model, run_attack_experiment
from fedwave.privacy.attacks.simulate import resolve_schedule
from fedwave.rng import numpy_generator
from fedwave.server.payload import build_payload
from fedwave.users import UserConfig, UserSingleStep, make_setup


def _cfg(dataset: str, model: str, attack: dict[str, Any], **top: Any) -> Config:
    data: dict[str, Any] = {"data": {"dataset": dataset}, "model": {"name": model}, "attack": attack}
    data.update(top)
    return config_from_dict(data, "bench")


def _run(dataset: str, model: str, attack: dict[str, Any], **top: Any) -> tuple[AttackRun, float]:
    start = time.perf_counter()
    run = run_attack_experiment(_cfg(dataset, model, attack, **top))
    return run, time.perf_counter() - start


def idlg_label_accuracy(dataset: str, samples: int, batch: int = 1) -> float:
    """Label accuracy of the idlg label estimate over ``samples`` batches (multiset overlap for batches)."""
    cfg = _cfg(dataset, "lenet", {"name": "idlg", "batch": batch, "labels": "estimate"})
    model, ds = attacked_model(cfg)
    payload = build_payload(model, with_buffers=False)
    server = ServerView.from_payload(
        model, payload, input_shape=ds.input_shape, num_classes=ds.num_classes, mean=ds.mean, std=ds.std
    )
    rng = numpy_generator(0, "bench", "idlg", dataset, batch)
    correct = total = 0
    for _ in range(samples):
        idx = torch.as_tensor(rng.choice(ds.y_train.shape[0], batch, replace=False))
        x, y = ds.x_train[idx], ds.y_train[idx]
        user = UserSingleStep(
            model, torch.nn.CrossEntropyLoss(), x, y, UserConfig(num_data_points=batch), make_setup()
        )
        shared, _ = user.compute_local_updates(payload)
        obs = Observation.from_shared(shared, "gradient")
        labels, _ = resolve_labels(obs, server, resolve_schedule(obs, cfg.attack), cfg.attack, "estimate")
        assert labels is not None
        true_counts = torch.bincount(y, minlength=ds.num_classes)
        est_counts = torch.bincount(labels, minlength=ds.num_classes)
        correct += int(torch.minimum(true_counts, est_counts).sum())
        total += batch
    return correct / total


def _line(label: str, run: AttackRun, wall: float) -> str:
    s = run.summary
    per = s["wall_s"] / s["trials"]
    return (
        f"  {label:<44} PSNR median {s['psnr_median']:7.2f} dB  best {s['psnr_best']:7.2f}  "
        f"SSIM median {s['ssim_median']:.3f}  labels {s['label_accuracy']:.2f}  "
        f"attack {per:6.1f} s/trial  ({s['trials']} trials, {wall:.0f} s)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    p = argparse.ArgumentParser(prog="fedwave bench attacks", description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=10, help="single-image trials for dlg/ig (default 10)")
    p.add_argument("--label-samples", type=int, default=100, help="idlg single-sample batches (default 100)")
    p.add_argument(
        "--sweep-images", type=int, default=2, help="trials per TV weight of the sweep (default 2)"
    )
    p.add_argument(
        "--batch-trials", type=int, default=2, help="trials per batch size in section 5 (default 2)"
    )
    p.add_argument("--defence-images", type=int, default=3, help="trials per defence (default 3)")
    p.add_argument("--defence-attack", default="ig", help="attack used against the defences (default ig)")
    p.add_argument("--clip", type=float, default=1.0, help="clip C of the Gaussian-noise defence (default 1)")
    p.add_argument("--sections", default="1,2,3,4,5,6", help="comma-separated sections to run")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    sections = {int(s) for s in args.sections.split(",") if s.strip()}
    t0 = time.perf_counter()
    if 1 in sections:
        print("1. idlg label recovery, untrained lenet, fp32, single step")
        for ds in ("mnist", "digits"):
            acc = idlg_label_accuracy(ds, args.label_samples)
            print(
                f"  {ds:<8} batch 1: label accuracy {acc:.3f} over {args.label_samples} single-sample batches"
            )
            batches = max(1, args.label_samples // 5)
            acc4 = idlg_label_accuracy(ds, batches, batch=4)
            print(f"  {ds:<8} batch 4: count-estimator label accuracy {acc4:.3f} over {batches} batches")
    if 2 in sections:
        print("2. analytic, mlp (first layer: fully connected 784->128 with bias), MNIST, fp32")
        for batch, trials in ((1, args.images), (4, max(1, args.images // 3))):
            run, wall = _run("mnist", "mlp", {"name": "analytic", "trials": trials, "batch": batch})
            print(_line(f"batch {batch}", run, wall))
    dlg = {"name": "dlg", "trials": args.images}
    if 3 in sections:
        print("3. dlg, untrained lenet, MNIST, batch 1, fp32, single step, labels joint")
        run, wall = _run("mnist", "lenet", dlg)
        print(_line("dlg", run, wall))
    if 4 in sections:
        default_tv = Config().attack.ig.tv_weight
        print(f"4. ig, same setting; default tv_weight = {default_tv:g}")
        run, wall = _run("mnist", "lenet", {"name": "ig", "trials": args.images})
        print(_line(f"ig, default TV ({default_tv:g})", run, wall))
        for dataset in ("mnist", "digits"):
            for tv in (0.0, 1e-6, 1e-4, 1e-2):
                att = {"name": "ig", "trials": args.sweep_images, "ig": {"tv_weight": tv}}
                run, wall = _run(dataset, "lenet", att)
                print(
                    _line(f"ig sweep {dataset}, tv_weight {tv:g}" + (" (off)" if tv == 0 else ""), run, wall)
                )
    if 5 in sections:
        print("5. batches (lenet, MNIST, fp32, labels: ig estimated, dlg joint)")
        for batch in (2, 4):
            for name in ("ig", "dlg"):
                run, wall = _run(
                    "mnist", "lenet", {"name": name, "trials": args.batch_trials, "batch": batch}
                )
                print(_line(f"{name}, batch {batch}", run, wall))
    if 6 in sections:
        name = args.defence_attack
        print(f"6. defences against {name} (lenet, MNIST, batch 1, single step)")
        base = {"name": name, "trials": args.defence_images}
        noise = {"per_example_clipping": args.clip, "gradient_noise": args.clip}
        rows = []
        for label, top in (
            ("fp32 (none)", {"codec": "fp32"}),
            ("sign", {"codec": "sign"}),
            ("topk:0.01", {"codec": "topk:0.01"}),
            ("uniform:4", {"codec": "uniform:4"}),
            (f"gaussian noise z=1, clip {args.clip:g}", {"codec": "fp32", "local_privacy": noise}),
        ):
            run, wall = _run("mnist", "lenet", base, **top)
            rows.append((run.summary["psnr_median"], label))
            print(_line(label, run, wall))
        order = " > ".join(f"{lab} ({v:.1f})" for v, lab in sorted(rows, reverse=True))
        print(f"  ordering by median PSNR (dB, most leakage first): {order}")
    print(f"total wall time {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
