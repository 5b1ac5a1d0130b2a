"""The ``attack`` section of a config: which attack, on which user, with which guesses.

The attacked user is described with the field names of users.md (``attack.user.*``); its local privacy
measures are the config's ``local_privacy`` section and its uplink codec is ``codec.uplink``, so an attack
run measures exactly what the BS of that configuration would receive.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from fedwave.configbase import Section
from fedwave.errors import ConfigError
from fedwave.users.config import LocalDPConfig, UserConfig


class AttackUserConfig(Section):
    """The attacked user and its threat model (users.md names; ``attack.batch`` is its sample count)."""

    user_type: Literal["local_gradient", "local_update"] = Field(
        "local_gradient", description="local_gradient (one gradient) | local_update (several SGD steps)"
    )
    num_local_updates: int = Field(4, ge=1, description="local SGD steps (local_update)")
    num_data_per_local_update_step: int = Field(1, ge=1, description="samples per local step (local_update)")
    local_learning_rate: float = Field(1e-3, gt=0.0, description="local SGD learning rate (local_update)")
    provide_labels: bool = Field(False, description="the user shares its sorted labels")
    provide_num_data_points: bool = Field(True, description="the user shares its number of samples")
    provide_buffers: bool = Field(False, description="the user shares its buffers (BatchNorm statistics)")
    provide_local_hyperparams: bool | None = Field(
        None, description="share lr, steps, data per step and per-step labels; default true (local_update)"
    )

    def to_user_config(self, batch: int, local_dp: LocalDPConfig) -> UserConfig:
        """The users.md :class:`UserConfig` of the attacked user holding ``batch`` samples."""
        return UserConfig(
            user_type=self.user_type,
            num_data_points=batch,
            num_local_updates=self.num_local_updates,
            num_data_per_local_update_step=self.num_data_per_local_update_step,
            local_learning_rate=self.local_learning_rate,
            provide_labels=self.provide_labels,
            provide_num_data_points=self.provide_num_data_points,
            provide_buffers=self.provide_buffers,
            provide_local_hyperparams=self.provide_local_hyperparams,
            local_diff_privacy=local_dp,
        )


class GuessConfig(Section):
    """What the attacker assumes when the threat model hides it (null = no guess: the attack refuses)."""

    num_data_points: int | None = Field(None, ge=1, description="number of samples, if not shared")
    lr: float | None = Field(None, gt=0.0, description="local learning rate, if hyperparams not shared")
    steps: int | None = Field(None, ge=1, description="local SGD steps, if hyperparams not shared")
    data_per_step: int | None = Field(None, ge=1, description="samples per local step, if not shared")


class DLGConfig(Section):
    """Deep Leakage from Gradients (Zhu et al. 2019): Euclidean gradient distance, L-BFGS."""

    iterations: int = Field(50, ge=1, description="L-BFGS steps (each up to max_eval closure calls)")
    max_eval: int = Field(20, ge=1, description="L-BFGS inner iterations per step (torch max_iter)")
    lr: float = Field(1.0, gt=0.0, description="L-BFGS step size")
    restarts: int = Field(1, ge=1, description="independent initialisations; the best gradient loss is kept")
    line_search: bool = Field(
        True, description="strong-Wolfe line search in L-BFGS (off: fixed steps, as Zhu et al.)"
    )
    tol: float = Field(
        1e-10, ge=0.0, description="stop a restart once the relative gradient distance is below this"
    )


class IGConfig(Section):
    """Inverting Gradients (Geiping et al. 2020): 1 - cosine + tv_weight * TV, signed Adam, box."""

    iterations: int = Field(200, ge=1, description="Adam iterations per restart")
    step_size: float = Field(0.1, gt=0.0, description="initial Adam step (x0.1 at 3/8, 5/8, 7/8 of the run)")
    tv_weight: float = Field(
        0.0,
        ge=0.0,
        description="total-variation weight alpha (0 = off: best measured on MNIST/digits, see bench)",
    )
    restarts: int = Field(2, ge=1, description="independent initialisations; the best gradient loss is kept")
    signed: bool = Field(True, description="use the sign of the gradient in Adam (as Geiping et al.)")


class AttackConfig(Section):
    """``fedwave attack``: trials of one attack on fresh UE batches, as the BS receives them."""

    name: str = Field("ig", description="attack: analytic | idlg | dlg | ig")
    trials: int = Field(4, ge=1, description="independent UE batches attacked")
    batch: int = Field(1, ge=1, description="samples per attacked batch (the user's num_data_points)")
    at_round: Annotated[int, Field(ge=0)] | Literal["final"] | None = Field(
        None,
        description="the attacked model: null or 0: untrained (what every run broadcasts in round 0); N: the "
        "global model after N FL rounds of this config; final: after all fl.rounds rounds",
    )
    in_studies: bool = Field(
        False,
        description="fedwave compare: attack every finished run (method, seed) with these settings and "
        "store its leakage (same as --attack NAME)",
    )
    labels: Literal["auto", "estimate", "joint"] = Field(
        "auto",
        description="auto: shared labels if any, else the attack's own method (dlg: joint soft labels, "
        "others: gradient-based estimate); estimate: always from the last layer; joint: optimise soft labels",
    )
    user: AttackUserConfig = Field(default_factory=AttackUserConfig)
    guess: GuessConfig = Field(default_factory=GuessConfig)
    dlg: DLGConfig = Field(default_factory=DLGConfig)
    ig: IGConfig = Field(default_factory=IGConfig)

    @model_validator(mode="after")
    def _check_name(self) -> AttackConfig:
        from fedwave.privacy.attacks.registry import attack_names, get_attack

        if self.name not in attack_names():
            try:
                get_attack(self.name)  # a plug-in: import path or entry point (fedwave.plugins)
            except ConfigError as exc:
                if ":" in self.name:  # an import path that did not load: its own message says why
                    raise ValueError(str(exc)) from None
                raise ValueError(
                    f"unknown attack {self.name!r}; valid attacks: {', '.join(attack_names())}, or an "
                    "import path package.module:attack"
                ) from None
        return self
