"""Typed, validated configuration of a run; YAML in and out.

Unknown or misspelt keys are errors naming the key and the nearest valid one; wrong types and ranges
name the key and the allowed values. ``-o key=value`` overrides use dotted keys (``fl.rounds=5``,
``codec=uniform:8``, ``wireless.access.scheme=tdma``); values are parsed as YAML scalars.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from fedwave.adversary.config import AdversaryConfig, FaultsConfig
from fedwave.configbase import Section
from fedwave.configerrors import explain, qualify
from fedwave.configio import SHORTHANDS, apply_overrides, commented_yaml, parse_override, read_config_file
from fedwave.errors import ConfigError
from fedwave.privacy.attacks.config import AttackConfig
from fedwave.privacy.dp.config import DPConfig, check_dp_run, check_dp_training
from fedwave.sim.config import WirelessConfig
from fedwave.users.config import LocalDPConfig, UserConfig

DATASETS = ("digits", "mnist", "fashion-mnist", "cifar10", "mnist1d", "synthetic")
PARTITIONS = ("iid", "dirichlet", "shards", "unique_class", "balanced")


class DataConfig(Section):
    """The dataset and how it is split among the UEs."""

    dataset: Literal["digits", "mnist", "fashion-mnist", "cifar10", "mnist1d", "synthetic"] = Field(
        "digits", description="digits (built in) | mnist | fashion-mnist | cifar10 | mnist1d | synthetic"
    )
    root: str | None = Field(None, description="directory of the dataset files (default: where they install)")
    test_fraction: float = Field(
        0.2, gt=0.0, lt=1.0, description="held-out test share for datasets without an official split"
    )
    max_train: int | None = Field(None, ge=1, description="subsample the training set (seeded); null = all")
    partition: Literal["iid", "dirichlet", "shards", "unique_class", "balanced"] = Field(
        "iid", description="how samples are split among UEs"
    )
    alpha: float = Field(0.5, gt=0.0, description="dirichlet concentration (smaller = more skewed labels)")
    shards_per_user: int = Field(2, ge=1, description="shards: label-sorted shards per UE (McMahan et al.)")
    lognormal_sigma: float = Field(
        0.0, ge=0.0, description="iid: quantity skew, UE sizes ~ LogNormal(0, sigma); 0 = equal sizes"
    )


class ModelConfig(Section):
    """The model, by name (see ``fedwave.models.model_names()``)."""

    name: str = Field(
        "convnet",
        description="convnet | cnn | 2nn | mlp | resnet | lenet, or a plug-in: package.module:Model",
    )

    @field_validator("name")
    @classmethod
    def _known_model(cls, v: str) -> str:
        from fedwave.models.zoo import resolve_builder

        try:
            resolve_builder(v)  # a built-in name, or a plug-in (see fedwave.plugins)
        except ConfigError as exc:
            raise ValueError(str(exc).removeprefix("model.name: ")) from None
        return v


class FLConfig(Section):
    """Federated learning in the usual notation (McMahan et al. 2017)."""

    num_ues: int = Field(20, ge=1, description="number of UEs (users) in the cell")
    rounds: int = Field(20, ge=1, description="communication rounds (BS aggregation steps)")
    fraction: float = Field(1.0, gt=0.0, le=1.0, description="C: fraction of UEs selected per round")
    clients_per_round: int | None = Field(
        None, ge=1, description="UEs selected per round (overrides fraction when set)"
    )
    sampling: Literal["fixed", "poisson"] = Field(
        "fixed",
        description="fixed: the same number of UEs each round | poisson: each UE joins each round "
        "independently with probability fraction (what client-level DP's accounting assumes)",
    )
    selection: str = Field(
        "random",
        description="which UEs a round takes (fl.sampling fixed): random | round_robin (least recently "
        "taken, ties by id) | age (least recently taken, ties at random) | best_channel (highest estimated "
        "SNR this round) | proportional_fair (largest rate estimate / averaged served rate) | "
        "deadline_aware (random among the UEs predicted to meet wireless.policy.deadline_s) | a plug-in "
        "(package.module:function)",
    )
    pf_window: float = Field(
        10.0,
        ge=1.0,
        le=1e6,
        description="proportional_fair's averaging window w in rounds: A <- (1 - 1/w) A + R/w when served",
    )
    algorithm: Literal["fedavg", "fedsgd"] = Field(
        "fedavg", description="fedavg: UEs share parameter differences; fedsgd: one gradient"
    )
    local_epochs: int = Field(1, ge=1, description="E: local epochs per round (fedavg)")
    batch_size: int = Field(10, ge=1, description="B: local batch size (fedavg)")
    lr: float = Field(0.1, ge=0.0, description="local SGD learning rate (fedavg)")
    shuffle: bool = Field(True, description="reshuffle each UE's data every local epoch")
    weighting: Literal["samples", "uniform"] = Field(
        "samples", description="aggregation weights: by UE sample count or uniform"
    )
    target_accuracy: float | None = Field(
        None,
        gt=0.0,
        le=1.0,
        description="time-to-accuracy target; the run also stops when it is reached if stop_at_target",
    )
    stop_at_target: bool = Field(False, description="end the run once target_accuracy is reached")

    @field_validator("selection")
    @classmethod
    def _known_selection(cls, v: str) -> str:
        from fedwave.fl.selection import get_selection

        try:
            get_selection(v)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return v.strip()

    @model_validator(mode="after")
    def _poisson_is_random(self) -> FLConfig:
        if self.sampling == "poisson" and self.selection != "random":
            raise ValueError(
                f"fl.sampling 'poisson' draws each UE independently; it cannot use fl.selection "
                f"{self.selection!r} (set fl.selection=random, or fl.sampling=fixed)"
            )
        return self

    def per_round(self) -> int:
        """Number of UEs selected per round."""
        if self.clients_per_round is not None:
            return min(self.clients_per_round, self.num_ues)
        return max(1, round(self.fraction * self.num_ues))


class ServerConfig(Section):
    """The BS's optimizer over the aggregated pseudo-gradient (sgd lr 1 = FedAvg)."""

    optimizer: Literal["sgd", "adam"] = Field("sgd", description="sgd (FedAvg/FedAvgM) | adam (FedAdam)")
    lr: float = Field(1.0, gt=0.0, description="server learning rate")
    momentum: float = Field(0.0, ge=0.0, lt=1.0, description="sgd momentum (FedAvgM when > 0)")
    nesterov: bool = Field(False, description="Nesterov momentum (sgd)")
    beta1: float = Field(0.9, ge=0.0, lt=1.0, description="adam beta1")
    beta2: float = Field(0.99, ge=0.0, lt=1.0, description="adam beta2")
    eps: float = Field(1e-3, gt=0.0, description="adam epsilon (FedAdam's adaptivity tau)")
    norm_bound: float | None = Field(
        None,
        gt=0.0,
        description="scale each received update to at most this L2 norm (norm bounding); null = off",
    )
    divergence_factor: float | None = Field(
        1e3,
        gt=0.0,
        description="roll back an aggregation that moves the model by more than this times max(1, ||w||) "
        "(non-finite models are always rolled back); null = only non-finite",
    )
    max_idle_rounds: int | None = Field(
        10,
        ge=1,
        description="stop with an error after this many consecutive rounds that aggregate no update "
        "(every update lost, dropped, rejected or rolled back); null = never",
    )
    aggregator: str = Field(
        "mean",
        description="how the BS combines the updates: mean | median | trimmed_mean[:beta] | krum[:f] | "
        "multi_krum[:f[:m]] | rfa[:iters] | centered_clip[:tau[:iters]] (robust rules weigh UEs equally; "
        "`fedwave aggregators` lists what each tolerates)",
    )

    @field_validator("aggregator")
    @classmethod
    def _known_aggregator(cls, v: str) -> str:
        from fedwave.server.aggregators import get_aggregator

        try:
            return get_aggregator(v).spec
        except ConfigError as exc:
            raise ValueError(str(exc)) from None


class CodecConfig(Section):
    """How updates are encoded on the air (spec strings; ``fedwave codecs`` lists them)."""

    uplink: str = Field("fp32", description="UE -> BS update codec, e.g. fp32, uniform:8, ef(topk:0.01)")
    downlink: str = Field("fp32", description="BS -> UE broadcast codec (applied to the model change)")


class EngineConfig(Section):
    """How client work is executed (not what it computes)."""

    executor: Literal["sequential", "batched"] = Field(
        "sequential",
        description="sequential: one UE after another; batched: the UEs of a round that share a model "
        "version train together (torch.func.vmap; same records up to float rounding; DP-SGD users of "
        "models other than mlp/2nn/cnn/convnet, local noise, poisoning and dropout models fall back to "
        "sequential)",
    )
    device: str = Field(
        "cpu",
        description="torch device for local training (DP-SGD and local noise included) and the BS's "
        "evaluation: cpu, cuda, cuda:N or mps (aggregation, client-level DP, behaviours and codecs run on "
        "the CPU; CUDA runs compute in IEEE float32, no TF32)",
    )
    deterministic: bool = Field(
        True,
        description="CUDA: PyTorch's deterministic kernels, so that a run is bit-identical from one time "
        "to the next (an operation without one stops the run); false allows cuDNN's and cuBLAS's others",
    )
    codec_states_in_memory: int | None = Field(
        None,
        ge=1,
        description="keep at most this many UEs' codec states (error-feedback residuals) in memory, the "
        "others on disk (same results); null = all in memory",
    )
    threads: int | None = Field(
        1,
        ge=1,
        description="torch intra-op threads; 1 keeps results bit-identical across machines "
        "(float reductions depend on the thread count); null = torch's default",
    )

    @field_validator("device")
    @classmethod
    def _usable_device(cls, v: str) -> str:
        check_device(v)
        return v


DEVICE_TYPES = ("cpu", "cuda", "mps")


def check_device(text: str) -> None:
    """Raise ``ValueError`` unless ``text`` names a torch device of :data:`DEVICE_TYPES` present here."""
    import torch

    allowed = "cpu, cuda, cuda:N (N = GPU index) or mps"
    try:
        dev = torch.device(text)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"'{text}' is not a device; use {allowed}") from None
    if dev.type not in DEVICE_TYPES:
        raise ValueError(f"device type '{dev.type}' cannot train models here; use {allowed}")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch is built without CUDA" if torch.version.cuda is None else "no GPU is visible"
            raise ValueError(f"'{text}' asks for CUDA but {why}; use engine.device=cpu")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise ValueError(f"'{text}' asks for GPU {dev.index} but this machine has {count} GPU(s)")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"'{text}' asks for Apple's MPS but it is not available here; use engine.device=cpu")


class OutputConfig(Section):
    """Where results go."""

    dir: str = Field("runs", description="parent directory of run directories")
    name: str | None = Field(None, description="run directory name (default: a timestamped name)")


class Config(Section):
    """A whole fedwave run."""

    seed: int = Field(0, ge=0, description="seed of every random stream of the run")
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    fl: FLConfig = Field(default_factory=FLConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    local_privacy: LocalDPConfig = Field(
        default_factory=LocalDPConfig,
        description="users.md local noise/clipping (absolute scale, unaccounted)",
    )
    dp: DPConfig = Field(
        default_factory=DPConfig, description="differential privacy with accounting (epsilon at delta)"
    )
    codec: CodecConfig = Field(default_factory=CodecConfig)
    wireless: WirelessConfig = Field(default_factory=WirelessConfig)
    faults: FaultsConfig = Field(
        default_factory=FaultsConfig, description="faulty UEs: NaN, Inf, huge or zero updates, silence"
    )
    adversary: AdversaryConfig = Field(
        default_factory=AdversaryConfig,
        description="Byzantine UEs: sign_flip, scale, gaussian, label_flip, alie, ipm",
    )
    engine: EngineConfig = Field(default_factory=EngineConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    attack: AttackConfig = Field(
        default_factory=AttackConfig, description="fedwave attack: gradient-leakage attack on UE updates"
    )

    @field_validator("codec", mode="before")
    @classmethod
    def _codec_shorthand(cls, v: Any) -> Any:
        return {SHORTHANDS["codec"]: v} if isinstance(v, str) else v

    @model_validator(mode="after")
    def _check_across_sections(self) -> Config:
        problems = (
            _codec_problems(self)
            + _cell_problems(self)
            + _fault_problems(self)
            + _aggregator_problems(self)
            + _aircomp_problems(self)
            + _selection_problems(self)
        )
        if problems:
            raise ValueError("\n  ".join(problems))
        return self

    @model_validator(mode="after")
    def _check_dp(self) -> Config:
        check_dp_run(self.dp, self.fl, self.model.name)
        check_dp_training(self)
        return self

    @property
    def user(self) -> UserConfig:
        """The ``cfg_case.user`` of each UE, derived from the FL notation (users.md machinery)."""
        fedavg = self.fl.algorithm == "fedavg"
        return UserConfig(
            user_type="local_update" if fedavg else "local_gradient",
            num_data_points="all",
            local_epochs=self.fl.local_epochs if fedavg else None,
            num_data_per_local_update_step=self.fl.batch_size,
            local_learning_rate=self.fl.lr,
            shuffle=self.fl.shuffle,
            provide_num_data_points=True,
            provide_buffers=True,
            provide_local_hyperparams=False,
            local_diff_privacy=self.local_privacy,
        )

    def to_dict(self) -> dict[str, Any]:
        """The resolved configuration as plain data (YAML/JSON-serialisable)."""
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        """The resolved configuration as YAML."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


# ------------------------------------------------------------------------------ checks across sections


def _selection_problems(cfg: Config) -> list[str]:
    from fedwave.fl.selection import RADIO_RULES

    rule = cfg.fl.selection
    if rule not in RADIO_RULES:
        return []
    if cfg.wireless.policy.name == "async":
        return [
            f"fl.selection {rule!r} reads the channel estimate of a synchronous round; policy 'async' "
            "picks one UE at a time without it. Use fl.selection random, round_robin or age, or another "
            "policy"
        ]
    if rule == "deadline_aware" and cfg.wireless.policy.deadline_s is None:
        return [
            "fl.selection 'deadline_aware' keeps the UEs predicted to finish within the round deadline: set "
            "wireless.policy.deadline_s (with wireless.policy.name: deadline)"
        ]
    return []


def _codec_problems(cfg: Config) -> list[str]:
    from fedwave.codecs import get_codec

    problems = []
    for side in ("uplink", "downlink"):
        try:
            get_codec(getattr(cfg.codec, side))
        except ConfigError as exc:
            problems.append(f"codec.{side}: {exc}")
    return problems


def updates_per_aggregation(cfg: Config) -> int:
    """Updates one aggregation receives when none is lost: the round's selection, ``first_k``'s k or
    ``async``'s buffer."""
    policy = cfg.wireless.policy
    if policy.name == "first_k" and policy.k is not None:
        return min(policy.k, cfg.fl.per_round())
    if policy.name == "async":
        return policy.buffer_k
    return cfg.fl.per_round()


def _aggregator_problems(cfg: Config) -> list[str]:
    from fedwave.server.aggregators import get_aggregator

    agg = get_aggregator(cfg.server.aggregator)
    problems = []
    if agg.robust and cfg.dp.level == "client":
        problems.append(
            f"server.aggregator {agg.spec!r} with dp.level 'client': DP-FedAvg's noise and accounting are "
            "those of the clipped sum; use server.aggregator=mean (dp.level=sample works with any rule)"
        )
    n = updates_per_aggregation(cfg)
    if n < agg.min_updates:
        problems.append(
            f"server.aggregator {agg.spec!r} needs at least {agg.min_updates} updates per aggregation, but "
            f"a round delivers at most {n} (fl.num_ues, fl.fraction / fl.clients_per_round, "
            "wireless.policy.k or buffer_k); select more UEs or choose a rule with a smaller f"
        )
    return problems


def _aircomp_problems(cfg: Config) -> list[str]:
    """What the BS cannot do with an over-the-air sum (``wireless.access.scheme: aircomp``): it never sees
    a single update, and the uplink carries the raw (analog) update, not a codec's bytes."""
    from fedwave.codecs import get_codec
    from fedwave.server.aggregators import get_aggregator

    if cfg.wireless.access.scheme != "aircomp":
        return []
    problems = []
    try:
        uplink = get_codec(cfg.codec.uplink).spec
    except ConfigError:
        uplink = None  # reported by _codec_problems
    if uplink is not None and uplink != "fp32":
        problems.append(
            f"codec.uplink={cfg.codec.uplink!r} with wireless.access.scheme 'aircomp': the UEs transmit "
            "their update in analog (or its signs: access.aircomp.mode=one_bit), no codec's bytes; set "
            "codec.uplink=fp32"
        )
    agg = get_aggregator(cfg.server.aggregator)
    if agg.robust:
        problems.append(
            f"server.aggregator {agg.spec!r} with wireless.access.scheme 'aircomp': the BS receives only the "
            "sum of the updates over the air, never one update; use server.aggregator=mean"
        )
    if cfg.server.norm_bound is not None:
        problems.append(
            "server.norm_bound with wireless.access.scheme 'aircomp': the BS cannot bound updates it never "
            "sees one by one; remove server.norm_bound"
        )
    if cfg.dp.level == "client":
        problems.append(
            "dp.level 'client' with wireless.access.scheme 'aircomp': DP-FedAvg clips and noises at the BS "
            "per update, which an over-the-air sum does not allow, and the channel noise (scaled by the "
            "updates' own spread) is no calibrated mechanism; use dp.level=sample or off"
        )
    return problems


def _fault_problems(cfg: Config) -> list[str]:
    f = cfg.faults
    problems = []
    if f.active and f.kind == "silent" and cfg.wireless.policy.name == "sync":
        problems.append(
            "faults.kind 'silent' under wireless.policy.name 'sync' would stall every round a silent UE is "
            "selected in (sync waits for every UE); use policy 'deadline' (set deadline_s) or first_k"
        )
    for name, section in (("faults", f), ("adversary", cfg.adversary)):
        if section.ues is not None and any(u >= cfg.fl.num_ues for u in section.ues):
            problems.append(f"{name}.ues {section.ues} name UEs outside 0..{cfg.fl.num_ues - 1} (fl.num_ues)")
    a = cfg.adversary
    if f.ues is not None and a.ues is not None and set(f.ues) & set(a.ues):
        problems.append(f"UEs {sorted(set(f.ues) & set(a.ues))} are in both faults.ues and adversary.ues")
    both_fractions = f.active and a.active and f.ues is None and a.ues is None
    if both_fractions and f.count(cfg.fl.num_ues) + a.count(cfg.fl.num_ues) > cfg.fl.num_ues:
        problems.append("faults.fraction + adversary.fraction make more misbehaving UEs than fl.num_ues")
    return problems


def _in_wireless(message: str) -> str:
    """``"cell.positions_m has ..."`` -> ``"wireless.cell.positions_m has ..."`` (the user's key)."""
    return qualify(Config, ("wireless",), message) or f"wireless: {message}"


def _cell_problems(cfg: Config) -> list[str]:
    """The wireless config against the number of UEs: per-UE lists and the round policy.

    Builds the simulated cell exactly as a run does (the checks live with the code that needs them), so
    a per-UE list of the wrong length or a policy that cannot run fails at validation, before any run.
    """
    from fedwave.sim.clock import Clock

    n, per_round = cfg.fl.num_ues, cfg.fl.per_round()
    selected = (
        f"fl.clients_per_round={cfg.fl.clients_per_round}"
        if cfg.fl.clients_per_round is not None
        else f"fl.fraction={cfg.fl.fraction} x fl.num_ues={n}"
    )
    try:
        clock = Clock(cfg.wireless, n, 0.0, cfg.seed)
    except ConfigError as exc:
        return [f"{_in_wireless(str(exc))} (fl.num_ues={n})"]
    try:
        clock.policy.check(n, per_round)
    except ConfigError as exc:
        return [f"{_in_wireless(str(exc))} (fl.num_ues={n}; {per_round} UEs selected per round: {selected})"]
    return []


# --------------------------------------------------------------------------------------- loading


def config_from_dict(data: dict[str, Any], source: str = "config") -> Config:
    """Validate a nested dict into a :class:`Config` (errors as :class:`ConfigError` naming the keys)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections, got {type(data).__name__}")
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise explain(exc, Config, source) from None


def config_data(path: str | Path | None = None, overrides: list[str] | None = None) -> dict[str, Any]:
    """The plain data of a config file (``{}`` if ``path`` is None) with ``key=value`` overrides applied."""
    data = read_config_file(path) if path is not None else {}
    return apply_overrides(data, overrides or [], Config)


def describe_source(path: str | Path | None, overrides: list[str] | None = None) -> str:
    """Where a config came from, for error messages: ``c.yaml with overrides fl.rounds=5``."""
    source = str(path) if path is not None else "defaults"
    return source + (" with overrides " + " ".join(overrides) if overrides else "")


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Read a YAML config (defaults if ``path`` is None), apply ``key=value`` overrides, validate."""
    return config_from_dict(config_data(path, overrides), describe_source(path, overrides))


__all__ = [
    "Config",
    "apply_overrides",
    "commented_yaml",
    "config_data",
    "config_from_dict",
    "load_config",
    "parse_override",
    "read_config_file",
]
