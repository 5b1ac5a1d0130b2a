"""The ``dp`` section of a run: differential privacy with accounting (privacy.md, "Differential privacy").

Two levels, both accounted round by round by an established accountant (``dp.accountant``):

* ``client``: DP-FedAvg (McMahan et al. 2018). Each selected UE clips its update to L2 norm ``clip``
  (S); Gaussian noise N(0, (z S)^2) is added to the sum of the clipped updates, by the BS
  (``placement: central``) or in shares by the UEs (``placement: distributed``); the sum is divided by
  the fixed denominator q N. One accountant step per round at sampling rate q.
* ``sample``: DP-SGD inside local training. Each local step Poisson-samples a batch (rate q = B / n_k),
  clips every per-example gradient to ``clip`` (C), adds N(0, (z C)^2) to their sum and divides by the
  expected batch size B. One accountant per UE, one step per local step.

Why client level refuses ``fl.sampling: fixed`` (unless every UE takes part in every round): a fixed
number K of N UEs per round is sampling *without replacement*. The accountants used here (Opacus RDP and
PRV, dp-accounting PLD) amplify privacy for *Poisson* sampling under add/remove adjacency; the known
without-replacement bounds hold under replace-one adjacency, a different guarantee. Reporting the Poisson
epsilon at q = K/N for a fixed-size selection would state a guarantee that was not proven, so the
combination is an error. With K = N (``fl.fraction: 1``) nothing is sampled: the accountant runs at
q = 1 (no amplification), which is exact, and the combination is allowed.

``clip: null`` means "no clipping": the sensitivity is unbounded, so the accounted epsilon is infinite.
Together with ``noise_multiplier: 0`` it makes every DP step an exact no-op: a client-level run then
equals the run without DP bit for bit when q N equals the number of updates aggregated each round
(``fl.fraction: 1``, no losses), with ``fl.weighting: uniform`` and the same sampling. Non-finite values
are refused (use null, not inf).

:func:`check_dp_run` (the ``dp`` section against ``fl`` and the model) and :func:`check_dp_training`
(what training needs from the other sections) run in the config validator, before anything trains.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from fedwave.configbase import Section

DPLevel = Literal["off", "client", "sample"]
Placement = Literal["central", "distributed"]
AccountantName = Literal["rdp", "prv", "pld"]


class DPConfig(Section):
    """Differential privacy with accounting: DP-FedAvg (client) or DP-SGD (sample); epsilon at delta."""

    level: DPLevel = Field(
        "off", description="off | client (DP-FedAvg, per UE) | sample (DP-SGD inside local training)"
    )
    clip: float | None = Field(
        1.0,
        gt=0.0,
        description="L2 bound: S on each UE's update (client) or C on each example's gradient (sample); "
        "null = no clipping (unbounded sensitivity: epsilon is infinite)",
    )
    noise_multiplier: float | None = Field(
        None,
        ge=0.0,
        description="z: Gaussian noise std = z * clip (on the sum); null = calibrate from target_epsilon",
    )
    delta: float = Field(1e-5, gt=0.0, lt=1.0, description="delta of the reported (epsilon, delta)-DP")
    target_epsilon: float | None = Field(
        None,
        gt=0.0,
        description="calibrate z before training so that the planned rounds end at this epsilon "
        "(leave noise_multiplier null)",
    )
    stop_at_epsilon: float | None = Field(
        None,
        gt=0.0,
        description="end the run before a round whose planned noise would take epsilon past this value",
    )
    placement: Placement = Field(
        "central",
        description="client level: central (the BS adds the noise to the sum) | distributed (each "
        "selected UE adds its share before encoding)",
    )
    accountant: AccountantName = Field(
        "rdp", description="rdp (Opacus RDP) | prv (Opacus PRV, Gopi et al.) | pld (dp-accounting PLD)"
    )

    @field_validator("clip", "noise_multiplier", "target_epsilon", "stop_at_epsilon", "delta")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError("must be a finite number (use null for 'no clipping' or 'not set')")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> DPConfig:
        if self.level == "off":
            return self
        if self.noise_multiplier is not None and self.target_epsilon is not None:
            raise ValueError(
                f"dp.target_epsilon ({self.target_epsilon}) and dp.noise_multiplier "
                f"({self.noise_multiplier}) are both set: give one. target_epsilon calibrates z; "
                "noise_multiplier fixes it."
            )
        if self.noise_multiplier is None and self.target_epsilon is None:
            raise ValueError(
                f"dp.level={self.level} needs dp.noise_multiplier (z >= 0) or dp.target_epsilon "
                "(z is then calibrated), e.g. -o dp.noise_multiplier=1.0"
            )
        if self.clip is None and (self.noise_multiplier or 0.0) > 0.0:
            raise ValueError(
                "dp.clip is null (no clipping) but dp.noise_multiplier > 0: the noise std is z * clip, "
                "so set dp.clip (> 0), or z = 0 for a no-op DP run"
            )
        if self.clip is None and self.target_epsilon is not None:
            raise ValueError(
                "dp.clip is null (no clipping): no noise reaches dp.target_epsilon; set dp.clip (> 0)"
            )
        if self.level == "sample" and self.placement == "distributed":
            raise ValueError(
                "dp.placement=distributed applies to dp.level=client; sample-level noise is added "
                "inside each UE's local steps (leave dp.placement=central)"
            )
        return self


def check_dp_run(dp: DPConfig, fl: Any, model_name: str) -> None:
    """Cross-section checks of ``dp`` against ``fl`` and ``model.name`` (ValueError naming the keys).

    Args:
        dp: the ``dp`` section.
        fl: the ``fl`` section (``sampling``, ``num_ues``, ``per_round()``, ``clients_per_round``).
        model_name: ``model.name``; for sample level the model is built once (cheaply, on 8x8 inputs)
            to refuse BatchNorm before training.
    """
    if fl.sampling == "poisson" and fl.clients_per_round is not None:
        raise ValueError(
            "fl.sampling=poisson draws each UE with probability fl.fraction; fl.clients_per_round "
            f"({fl.clients_per_round}) fixes the count instead: unset it and set fl.fraction"
        )
    if dp.level == "client" and fl.sampling == "fixed" and fl.per_round() < fl.num_ues:
        raise ValueError(
            f"dp.level=client with fl.sampling=fixed selects {fl.per_round()} of {fl.num_ues} UEs per round "
            "(sampling without replacement), which the accountants do not cover: set fl.sampling=poisson "
            "(each UE joins with probability fl.fraction) or select every UE (fl.fraction=1)"
        )
    if dp.level == "sample":
        from fedwave.errors import ConfigError
        from fedwave.models import build_model
        from fedwave.privacy.dp.dpsgd import check_dpsgd_model

        try:
            model = build_model(model_name, (1, 8, 8), 10)
        except ConfigError:
            return  # an unknown model name is reported by the model's own check
        check_dpsgd_model(model, model_name)


def check_dp_training(cfg: Any) -> None:
    """What training with ``fl.sampling: poisson`` or DP needs from the other sections (ValueError).

    Run by the config validator, so a study refuses a bad grid point before any run trains. Refused,
    each because the reported epsilon would not hold (or the sampling would not be what it says):

    * ``fl.sampling: poisson`` with ``wireless.policy.name: async`` (no rounds to sample for).
    * DP with ``async`` (updates trained on older models, staleness weights: not one Poisson-sampled
      release per round), with ``wireless.event_trigger`` (a UE's choice to send or skip, and with
      ``on_skip: reuse`` the BS re-aggregating an old update, depend on its private update without
      noise), and with models holding buffers (BatchNorm statistics are averaged without clip or noise).
    * Distributed placement with a lossy uplink codec (the codec acts on the noised update, so the sum
      is no longer the Gaussian mechanism accounted; central placement clips each decoded update at the
      BS and is correct with any codec) or with ``server.norm_bound`` (it would cut the noise shares).
    * Sample level with ``local_privacy`` settings (DP-SGD replaces the local loop they act in).
    """
    fl, dp = cfg.fl, cfg.dp
    policy = cfg.wireless.policy.name
    if fl.sampling == "poisson" and policy == "async":
        raise ValueError(
            "fl.sampling=poisson samples the UEs of each synchronous round, but wireless.policy.name=async "
            "dispatches a UE whenever a training slot frees up: use fl.sampling=fixed with async, or a "
            "synchronous policy (sync, deadline, first_k)"
        )
    if dp.level == "off":
        return
    problems = []
    if policy == "async":
        problems.append(
            f"dp.level={dp.level} with wireless.policy.name=async: buffered asynchronous aggregation "
            "(stale updates, staleness weights) is not the one Poisson-sampled release per round the "
            "accountant covers; use policy sync, deadline or first_k"
        )
    trigger = cfg.wireless.event_trigger
    if trigger.enabled:
        problems.append(
            f"dp.level={dp.level} with wireless.event_trigger.enabled=true: a UE's choice to send or skip "
            f"(and, with on_skip={trigger.on_skip}, what the BS aggregates for a skip) depends on its "
            "private update and is released without noise; set wireless.event_trigger.enabled=false"
        )
    if dp.level == "client" and dp.placement == "distributed":
        from fedwave.codecs import get_codec
        from fedwave.errors import ConfigError

        try:
            exact = get_codec(cfg.codec.uplink).exact
        except ConfigError:
            exact = True  # an unknown codec is reported by the codec check
        if not exact:
            problems.append(
                f"dp.placement=distributed with the lossy uplink codec '{cfg.codec.uplink}': the codec acts "
                "on each noised update, so the decoded sum is no longer the Gaussian mechanism the "
                "accountant covers; use a lossless codec (codec.uplink=fp32) or dp.placement=central (the "
                "BS clips each decoded update to dp.clip again, correct with any codec)"
            )
        if cfg.server.norm_bound is not None:
            problems.append(
                f"dp.placement=distributed with server.norm_bound={cfg.server.norm_bound}: bounding each "
                "received update would cut the UEs' noise shares; leave server.norm_bound null (each UE "
                "clips to dp.clip) or use dp.placement=central"
            )
    if dp.level == "sample":
        lp = cfg.local_privacy
        set_keys = [
            f"local_privacy.{k}={getattr(lp, k)}"
            for k in ("gradient_noise", "input_noise", "per_example_clipping")
            if getattr(lp, k) > 0
        ]
        if set_keys:
            problems.append(
                f"dp.level=sample replaces local training by DP-SGD, where {', '.join(set_keys)} would not "
                "act: set them to 0 (DP-SGD clips to dp.clip and adds z * dp.clip), or use dp.level=client"
            )
    problems.extend(_buffer_problems(dp.level, cfg.model.name))
    if problems:
        raise ValueError("\n  ".join(problems))


def _buffer_problems(level: str, model_name: str) -> list[str]:
    """A model with buffers (BatchNorm running statistics) under client-level DP (sample: check_dp_run)."""
    if level != "client":
        return []
    from fedwave.errors import ConfigError
    from fedwave.models import build_model

    try:
        model = build_model(model_name, (1, 8, 8), 10)
    except ConfigError:
        return []  # an unknown model name is reported by the model's own check
    buffers = [name for name, _ in model.named_buffers()]
    if not buffers:
        return []
    shown = ", ".join(buffers[:3]) + (f" and {len(buffers) - 3} more" if len(buffers) > 3 else "")
    return [
        f"dp.level=client: model.name '{model_name}' has buffers ({shown}), BatchNorm statistics the UEs "
        "send and the BS averages without clipping or noise, so they would leak unaccounted. Use a model "
        "with GroupNorm instead of BatchNorm or one without normalisation (convnet, cnn, 2nn, mlp, lenet)"
    ]
