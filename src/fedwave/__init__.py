"""fedwave: federated learning over a simulated wireless cell.

The path of one round, module by module::

    data (partition) -> users (local update) -> codecs (encode) -> channel/sim (air, clock)
      -> server (decode, aggregate) -> evaluate -> report (record, plot)

The public API is the names below (see :mod:`fedwave.api` and :mod:`fedwave.plugins`)::

    import fedwave
    result = fedwave.run(fedwave.make_config(fl={"rounds": 3}))
    print(result.rounds[["round", "accuracy", "t_end"]])

They are imported on first use, so ``import fedwave`` stays cheap (the CLI starts fast).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from fedwave.errors import ConfigError, DatasetUnavailable, FedwaveError, PayloadError

if TYPE_CHECKING:
    from fedwave.api import (
        AttackResult,
        ConfigLike,
        RunResult,
        attack,
        compare,
        epsilons,
        make_config,
        privacy_plan,
        run,
    )
    from fedwave.codecs import Codec, CodecState, get_codec
    from fedwave.config import Config
    from fedwave.fl.selection import SelectionContext
    from fedwave.models import build_model
    from fedwave.plugins import (
        register_aggregator,
        register_attack,
        register_codec,
        register_model,
        register_policy,
        register_selection,
    )
    from fedwave.privacy.dp import Accountant, PrivacyPlan, make_accountant
    from fedwave.report import Study, load_study
    from fedwave.server.aggregators import Aggregator, get_aggregator
    from fedwave.sim.policies import Policy

__version__ = "0.1.0"

#: Public name -> the module that defines it (imported lazily by :func:`__getattr__`).
_LAZY: dict[str, str] = {
    **dict.fromkeys(
        [
            "AttackResult",
            "ConfigLike",
            "RunResult",
            "attack",
            "compare",
            "epsilons",
            "make_config",
            "privacy_plan",
            "run",
        ],
        "fedwave.api",
    ),
    **dict.fromkeys(["Codec", "CodecState", "get_codec"], "fedwave.codecs"),
    "Config": "fedwave.config",
    "build_model": "fedwave.models",
    **dict.fromkeys(
        [
            "register_aggregator",
            "register_attack",
            "register_codec",
            "register_model",
            "register_policy",
            "register_selection",
        ],
        "fedwave.plugins",
    ),
    "SelectionContext": "fedwave.fl.selection",
    **dict.fromkeys(["Accountant", "PrivacyPlan", "make_accountant"], "fedwave.privacy.dp"),
    **dict.fromkeys(["Study", "load_study"], "fedwave.report"),
    **dict.fromkeys(["Aggregator", "get_aggregator"], "fedwave.server.aggregators"),
    "Policy": "fedwave.sim.policies",
}

__all__ = [
    "Accountant",
    "Aggregator",
    "AttackResult",
    "Codec",
    "CodecState",
    "Config",
    "ConfigError",
    "ConfigLike",
    "DatasetUnavailable",
    "FedwaveError",
    "PayloadError",
    "Policy",
    "PrivacyPlan",
    "RunResult",
    "SelectionContext",
    "Study",
    "__version__",
    "attack",
    "build_model",
    "compare",
    "epsilons",
    "get_aggregator",
    "get_codec",
    "load_study",
    "make_accountant",
    "make_config",
    "privacy_plan",
    "register_aggregator",
    "register_attack",
    "register_codec",
    "register_model",
    "register_policy",
    "register_selection",
    "run",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fedwave' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
