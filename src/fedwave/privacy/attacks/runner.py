"""``fedwave attack``: run one attack on fresh UE batches exactly as the BS of a config receives them.

Per trial t: draw ``attack.batch`` training samples (seeded by (seed, "attack", t)), give them to a user
of ``attack.user`` whose local privacy is the config's ``local_privacy``, let it answer the BS's payload
for the model (untrained, the global model after ``attack.at_round`` FL rounds of the config, or the
model a study's run ended with), encode its update with ``codec.uplink`` and decode it (what arrives),
run ``attack.name`` on that, and score the reconstruction against the true batch
(``fedwave.privacy.metrics``). The attack sees only the decoded update and the shared metadata. Wall
times are host-clock measurements of the attacks only. Client-level DP (``dp.level: client``) is applied as
the UE applies it before encoding (:func:`client_dp_view`); sample-level DP-SGD is refused
(:func:`check_applicable`).
"""

from __future__ import annotations

import copy
import csv
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fedwave.codecs import get_codec
from fedwave.config import Config
from fedwave.data.datasets import Dataset
from fedwave.data.federated import dataset_for
from fedwave.models import build_model
from fedwave.privacy.attacks.base import Reconstruction
from fedwave.privacy.attacks.errors import AttackNotApplicable
from fedwave.privacy.attacks.grid import grid_png
from fedwave.privacy.attacks.observation import Observation, ServerView, UpdateKind
from fedwave.privacy.attacks.registry import run_attack
from fedwave.privacy.dp.mechanisms import add_gaussian_noise, clip_update, distributed_share_std
from fedwave.privacy.dp.plan import plan_privacy
from fedwave.privacy.metrics import SampleMetrics, match, sample_metrics, summarize
from fedwave.rng import derive_seed, numpy_generator, torch_generator
from fedwave.server.payload import build_payload
from fedwave.users import UserDataSource, construct_user, make_setup
from fedwave.users.tensors import persistent_buffers

#: ``progress(trial, done, total, loss)`` after each optimisation step of trial ``trial``.
TrialProgress = Callable[[int, int, int, float], None]
METRIC_COLUMNS = ("trial", "sample", "label", "predicted_label", "label_correct", "mse", "psnr", "ssim")


@dataclass
class TrialResult:
    """One attacked batch: its metrics, the true and matched reconstructed samples (raw [0, 1] range)."""

    trial: int
    samples: list[SampleMetrics]
    true: torch.Tensor
    recon: torch.Tensor
    uplink_bytes: int
    wall_s: float
    diagnostics: dict[str, Any]


@dataclass
class AttackRun:
    """A finished ``fedwave attack`` run."""

    config: Config
    trials: list[TrialResult]
    summary: dict[str, Any]
    run_dir: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class _Case:
    def __init__(self, user: Any, seed: int) -> None:
        self.user = user
        self.seed = seed


def requested_rounds(cfg: Config) -> int:
    """FL rounds the attacked model has been trained for: ``attack.at_round`` (``final``: ``fl.rounds``)."""
    at = cfg.attack.at_round
    return cfg.fl.rounds if at == "final" else int(at or 0)


def broadcast_model(cfg: Config) -> tuple[nn.Module, Dataset, int]:
    """The model the BS broadcasts after :func:`requested_rounds` rounds, its dataset, and the rounds
    actually run (fewer when the run stops early, e.g. at its target accuracy).

    The untrained model is the one ``fedwave run`` starts from (same seeded initialisation); a trained
    one is obtained by replaying the config's FL run, which is deterministic.
    """
    ds = dataset_for(cfg)
    rounds = requested_rounds(cfg)
    if rounds > 0:
        from fedwave.fl.run import build_simulation

        sim = build_simulation(cfg)
        sim.run_rounds(rounds)
        return copy.deepcopy(sim.driver.bs.model), ds, sim.next_round
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(cfg.seed, "model-init"))
        model = build_model(cfg.model.name, tuple(ds.input_shape), ds.num_classes)
    return model, ds, 0


def attacked_model(cfg: Config) -> tuple[nn.Module, Dataset]:
    """The model the BS broadcasts and the dataset (see :func:`broadcast_model`)."""
    model, ds, _ = broadcast_model(cfg)
    return model, ds


def threat_model(cfg: Config) -> dict[str, Any]:
    """What the attacked user shares and how its update is protected, as recorded in summary.json."""
    a = cfg.attack
    u = a.user
    multi = u.user_type == "local_update"
    return {
        "user_type": u.user_type,
        "batch": a.batch,
        "shares_labels": u.provide_labels,
        "shares_num_data_points": u.provide_num_data_points,
        "shares_buffers": u.provide_buffers,
        "shares_local_hyperparams": multi and u.provide_local_hyperparams is not False,
        "local_update": (
            {
                "steps": u.num_local_updates,
                "data_per_step": u.num_data_per_local_update_step,
                "lr": u.local_learning_rate,
            }
            if multi
            else None
        ),
        "local_privacy": cfg.local_privacy.model_dump(mode="json"),
        "local_privacy_accounted": False,
        "dp": (
            {"level": "client", "placement": cfg.dp.placement, "clip": cfg.dp.clip}
            if cfg.dp.level == "client"
            else None
        ),
        "uplink_codec": cfg.codec.uplink,
        "model": cfg.model.name,
        "dataset": cfg.data.dataset,
        "at_round": a.at_round,
        "guesses": a.guess.model_dump(mode="json"),
    }


def attack_trial(
    cfg: Config,
    model: nn.Module,
    ds: Dataset,
    trial: int,
    progress: TrialProgress | None = None,
) -> TrialResult:
    """Attack one fresh batch of ``attack.batch`` training samples (see the module docstring)."""
    a = cfg.attack
    pick = numpy_generator(cfg.seed, "attack", "batch", trial).choice(
        ds.y_train.shape[0], a.batch, replace=False
    )
    source = UserDataSource(ds.x_train, ds.y_train, [pick])
    user_cfg = a.user.to_user_config(a.batch, cfg.local_privacy)
    loss_fn = nn.CrossEntropyLoss()
    user = construct_user(model, loss_fn, _Case(user_cfg, cfg.seed), make_setup(), data=source, seed=cfg.seed)
    meta = {
        "name": ds.name,
        "shape": tuple(ds.input_shape),
        "classes": ds.num_classes,
        "mean": tuple(ds.mean),
        "std": tuple(ds.std),
    }
    payload = build_payload(
        model, with_buffers=bool(persistent_buffers(model)), buffers_mode="train", metadata=meta
    )
    shared, true = user.compute_local_updates(payload, rng=torch_generator(cfg.seed, "attack", trial, "user"))
    codec = get_codec(cfg.codec.uplink)
    update = client_dp_view(cfg, [g.detach().cpu() for g in shared["gradients"]], trial)
    message = codec.encode(update, rng=torch_generator(cfg.seed, "attack", trial, "codec"))
    kind: UpdateKind = "update" if a.user.user_type == "local_update" else "gradient"
    obs = Observation.from_shared(shared, kind, gradients=codec.decode(message))
    server = ServerView.from_payload(
        model, payload, input_shape=ds.input_shape, num_classes=ds.num_classes, mean=ds.mean, std=ds.std
    )
    hook = None if progress is None else (lambda d, t, loss: progress(trial, d, t, loss))
    start = time.perf_counter()
    rec: Reconstruction = run_attack(
        a.name, obs, server, a, rng=torch_generator(cfg.seed, "attack", trial, "attack"), progress=hook
    )
    wall = time.perf_counter() - start
    true_raw = server.denormalize(true["data"].float())
    rec_raw = server.denormalize(rec.data.float())
    samples = sample_metrics(rec_raw, rec.labels, true_raw, true["labels"])
    order = torch.as_tensor(match(rec_raw, true_raw))
    return TrialResult(trial, samples, true_raw, rec_raw[order], len(message), wall, rec.diagnostics)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "inf" if value > 0 else ("-inf" if value < 0 else "nan")
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def write_run(run: AttackRun, run_dir: Path) -> None:
    """Write ``config.yaml``, ``metrics.csv``, ``summary.json`` and ``grid.png`` into ``run_dir``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(run.config.to_yaml())
    with (run_dir / "metrics.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(METRIC_COLUMNS)
        for t in run.trials:
            for s in t.samples:
                w.writerow(
                    [
                        t.trial,
                        s.sample,
                        s.label,
                        s.predicted_label,
                        int(s.label_correct),
                        f"{s.mse:.6e}",
                        f"{s.psnr:.4f}",
                        f"{s.ssim:.6f}",
                    ]
                )
    (run_dir / "summary.json").write_text(json.dumps(_json_safe(run.summary), indent=2) + "\n")
    (run_dir / "grid.png").write_bytes(run_grid_png(run))


def run_grid_png(run: AttackRun, *, titled: bool = True) -> bytes:
    """The run's picture grid (PNG bytes): true samples over their reconstructions, PSNR under each;
    ``titled`` adds a title naming the attack, model, data and codec."""
    c = run.config
    rounds = run.summary["threat_model"].get("model_rounds", 0)
    model = "untrained" if not rounds else f"after {rounds} rounds"
    title = (
        f"{c.attack.name} on {c.model.name} ({model}), {c.data.dataset}, codec {c.codec.uplink}: "
        "true (top, label) over reconstructed (bottom, label and PSNR)"
    )
    return grid_png(
        [t.true for t in run.trials],
        [t.recon for t in run.trials],
        true_labels=[torch.tensor([s.label for s in t.samples]) for t in run.trials],
        recon_labels=[torch.tensor([s.predicted_label for s in t.samples]) for t in run.trials],
        captions=[[f"{s.psnr:.1f} dB" for s in t.samples] for t in run.trials],
        title=title if titled else "",
    )


def check_applicable(cfg: Config) -> None:
    """Raise :class:`AttackNotApplicable` for settings the attacked user cannot reproduce."""
    if cfg.dp.level == "sample":
        raise AttackNotApplicable(
            "dp.level=sample: the attacked user (attack.user) does not train by DP-SGD on the run's "
            "schedule, so its update would not be what the BS of this config receives; measure leakage "
            "under client-level DP (dp.level=client) or local_privacy.* noise"
        )


def client_dp_view(cfg: Config, update: list[torch.Tensor], trial: int) -> list[torch.Tensor]:
    """What the BS receives of an honest UE's update under client-level DP (``dp.level: client``).

    The UE clips its update to S (``dp.clip``); with ``dp.placement: distributed`` it adds its noise share
    of std z S / sqrt(n), n the UEs expected per round (q N under Poisson sampling, else the selected
    count), drawn from (seed, "attack", trial, "dp"). With ``central`` placement the BS itself adds the
    noise to the sum, so it sees the clipped update without noise: central DP does not protect against
    the BS, and the attack shows it. z is the run's (calibrated from ``dp.target_epsilon`` when set).
    """
    if cfg.dp.level != "client":
        return update
    plan = plan_privacy(cfg)
    out, _ = clip_update(update, plan.clip)
    if cfg.dp.placement == "distributed" and plan.noise_multiplier > 0 and plan.clip is not None:
        fl = cfg.fl
        expected = fl.fraction * fl.num_ues if fl.sampling == "poisson" else fl.per_round()
        std = distributed_share_std(plan.noise_multiplier, plan.clip, max(1, round(expected)))
        out = add_gaussian_noise(out, std, torch_generator(cfg.seed, "attack", trial, "dp"))
    return out


def run_attack_experiment(
    cfg: Config,
    *,
    run_dir: Path | None = None,
    progress: TrialProgress | None = None,
    model: tuple[nn.Module, int] | None = None,
) -> AttackRun:
    """Run ``cfg.attack`` for ``attack.trials`` batches; write ``run_dir`` if given.

    ``model`` gives the attacked model and the FL rounds it was trained for (a study passes its run's
    model); by default it is :func:`broadcast_model`'s. The given model is never changed.
    """
    check_applicable(cfg)
    if cfg.engine.threads:
        torch.set_num_threads(cfg.engine.threads)
    if model is None:
        net, ds, rounds = broadcast_model(cfg)
    else:
        net, rounds = copy.deepcopy(model[0]), model[1]
        ds = dataset_for(cfg)
    trials = [attack_trial(cfg, net, ds, t, progress) for t in range(cfg.attack.trials)]
    samples = [s for t in trials for s in t.samples]
    summary = summarize(samples)
    summary.update(
        {
            "attack": cfg.attack.name,
            "trials": len(trials),
            "wall_s": sum(t.wall_s for t in trials),
            "wall_s_per_trial": sum(t.wall_s for t in trials) / len(trials),
            "uplink_bytes_median": sorted(t.uplink_bytes for t in trials)[len(trials) // 2],
            "threat_model": {**threat_model(cfg), "model_rounds": rounds},
            "diagnostics": [t.diagnostics for t in trials],
        }
    )
    run = AttackRun(cfg, trials, summary, run_dir)
    if run_dir is not None:
        write_run(run, run_dir)
    return run
