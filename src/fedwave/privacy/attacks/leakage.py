"""Leakage of one study run: the ``attack`` section run against that run's configuration, as stored.

A study (``fedwave compare --attack NAME`` or ``attack.in_studies: true``) calls :func:`measure_leakage`
after each run: ``attack.trials`` batches of ``attack.batch`` samples held by a user of ``attack.user``,
whose update goes through the run's uplink codec and local noise (``local_privacy``), attacked on the
model that ``attack.at_round`` names (the study passes the run's own final model for ``final``). The
result is a :class:`~fedwave.report.attacks.LeakageRecord`; an attack that cannot apply (an
:class:`AttackError`: the threat model hides what it needs, the model lacks the structure it relies on,
the config asks for DP the attacked user does not apply) gives a record with NaN numbers and the message
instead of an exception, so the study goes on.
"""

from __future__ import annotations

from dataclasses import asdict

from torch import nn

from fedwave.config import Config
from fedwave.privacy.attacks.errors import AttackError
from fedwave.privacy.attacks.runner import (
    TrialProgress,
    requested_rounds,
    run_attack_experiment,
    run_grid_png,
    threat_model,
)
from fedwave.report.attacks import LeakageRecord


def measure_leakage(
    cfg: Config, model: tuple[nn.Module, int] | None = None, progress: TrialProgress | None = None
) -> LeakageRecord:
    """Run ``cfg.attack`` (see the module docstring) and return what a study stores.

    ``model`` is the attacked model and the FL rounds it was trained for (None: the model
    ``attack.at_round`` names, see :func:`~fedwave.privacy.attacks.runner.broadcast_model`); it is never
    changed.
    """
    try:
        run = run_attack_experiment(cfg, model=model, progress=progress)
    except AttackError as exc:
        rounds = model[1] if model is not None else requested_rounds(cfg)
        return LeakageRecord(
            cfg.attack.name,
            "not applicable",
            error=f"{type(exc).__name__}: {exc}",
            model_rounds=rounds,
            threat_model={**threat_model(cfg), "model_rounds": rounds},
        )
    s = run.summary
    metrics = [{"trial": t.trial, **asdict(x)} for t in run.trials for x in t.samples]
    return LeakageRecord(
        cfg.attack.name,
        "done",
        psnr_median=s["psnr_median"],
        psnr_best=s["psnr_best"],
        ssim_median=s["ssim_median"],
        label_accuracy=s["label_accuracy"],
        wall_s=s["wall_s"],
        uplink_bytes_median=float(s["uplink_bytes_median"]),
        trials=s["trials"],
        samples=s["samples"],
        model_rounds=s["threat_model"]["model_rounds"],
        threat_model=s["threat_model"],
        metrics=metrics,
        diagnostics=s["diagnostics"],
        grid_png=run_grid_png(run, titled=False),  # the report's caption names the run
    )
