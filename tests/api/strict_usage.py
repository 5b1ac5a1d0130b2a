"""Uses every public name the way a user would; ``mypy --strict`` must accept it (test_api_typing)."""

from __future__ import annotations

import pandas as pd
import torch

import fedwave


def tiny(input_shape: tuple[int, ...], num_classes: int) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, num_classes))


def usage() -> tuple[pd.DataFrame, float]:
    cfg: fedwave.Config = fedwave.make_config(fl={"rounds": 1}, overrides={"codec": "uniform:8"})
    result: fedwave.RunResult = fedwave.run(cfg, model=tiny)
    rounds: pd.DataFrame = result.rounds
    study: fedwave.Study = fedwave.compare(cfg, vary={"codec": ["fp32"]}, study_dir="s")
    again: fedwave.Study = fedwave.load_study("s")
    leak: fedwave.AttackResult = fedwave.attack(cfg)
    plan: fedwave.PrivacyPlan = fedwave.privacy_plan(cfg)
    eps: pd.DataFrame = fedwave.epsilons(cfg)
    acc: fedwave.Accountant = fedwave.make_accountant("rdp")
    codec: fedwave.Codec = fedwave.get_codec("fp32")
    state: fedwave.CodecState = {}
    agg: fedwave.Aggregator = fedwave.get_aggregator("median")
    model: torch.nn.Module = fedwave.build_model("mlp", (1, 8, 8), 10)
    policy: type[fedwave.Policy] | None = None
    source: fedwave.ConfigLike = {"fl": {"rounds": 2}}
    errors: tuple[type[Exception], ...] = (
        fedwave.FedwaveError,
        fedwave.ConfigError,
        fedwave.PayloadError,
        fedwave.DatasetUnavailable,
    )
    decorators = (
        fedwave.register_codec("x"),
        fedwave.register_model("y"),
        fedwave.register_aggregator("z", robust=True),
        fedwave.register_attack("w"),
        fedwave.register_selection("v"),
    )
    policies: list[type[fedwave.Policy]] = []
    del study, again, leak, plan, acc, codec, state, agg, model, policy, source, errors, decorators, policies
    return pd.concat([rounds, eps]), result.final_accuracy + len(fedwave.__version__)
