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
Together with ``noise_multiplier: 0`` it makes every DP step an exact no-op (for checking that a DP run
with these settings equals the run without DP). Non-finite values are refused (use null, not inf).
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
