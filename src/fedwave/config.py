"""Typed, validated configuration of a run; YAML in and out.

Unknown or misspelt keys are errors naming the key and the nearest valid one; wrong types and ranges
name the key and the allowed values. ``-o key=value`` overrides use dotted keys (``fl.rounds=5``,
``codec=uniform:8``, ``wireless.access.scheme=tdma``); values are parsed as YAML scalars.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from fedwave.configbase import Section
from fedwave.errors import ConfigError
from fedwave.privacy.dp.config import DPConfig, check_dp_run
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

    name: str = Field("convnet", description="convnet | cnn | 2nn | mlp | resnet | lenet")


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


class CodecConfig(Section):
    """How updates are encoded on the air (spec strings; ``fedwave codecs`` lists them)."""

    uplink: str = Field("fp32", description="UE -> BS update codec, e.g. fp32, uniform:8, ef(topk:0.01)")
    downlink: str = Field("fp32", description="BS -> UE broadcast codec (applied to the model change)")


class EngineConfig(Section):
    """How client work is executed (not what it computes)."""

    executor: Literal["sequential"] = Field("sequential", description="sequential: one UE after another")
    device: str = Field("cpu", description="torch device for local training, e.g. cpu or cuda")
    threads: int | None = Field(
        1,
        ge=1,
        description="torch intra-op threads; 1 keeps results bit-identical across machines "
        "(float reductions depend on the thread count); null = torch's default",
    )


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
    engine: EngineConfig = Field(default_factory=EngineConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)

    @field_validator("codec", mode="before")
    @classmethod
    def _codec_shorthand(cls, v: Any) -> Any:
        return {"uplink": v} if isinstance(v, str) else v

    @model_validator(mode="after")
    def _check_codecs(self) -> Config:
        from fedwave.codecs import get_codec

        for side in ("uplink", "downlink"):
            try:
                get_codec(getattr(self.codec, side))
            except ConfigError as exc:
                raise ValueError(f"codec.{side}: {exc}") from None
        return self

    @model_validator(mode="after")
    def _check_dp(self) -> Config:
        check_dp_run(self.dp, self.fl, self.model.name)
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


# --------------------------------------------------------------------------------------- loading


def _fields_at(model: type[BaseModel], path: tuple[str | int, ...]) -> list[str]:
    """The valid keys of the section at ``path`` (for suggestions)."""
    cls: Any = model
    for part in path:
        field = cls.model_fields.get(part) if isinstance(part, str) else None
        ann = field.annotation if field is not None else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return []
        cls = ann
    return list(cls.model_fields)


def _explain(exc: ValidationError, source: str) -> ConfigError:
    lines = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        key = ".".join(str(p) for p in loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            valid = _fields_at(Config, loc[:-1])
            near = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.5)
            hint = f" Did you mean '{'.'.join([*map(str, loc[:-1]), near[0]])}'?" if near else ""
            lines.append(f"unknown key '{key}'.{hint} Valid keys here: {', '.join(valid)}.")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            got = err.get("input")
            shown = "" if isinstance(got, dict) or got is None else f" (got {got!r})"
            lines.append(f"{key}: {msg}{shown}")
    return ConfigError(f"invalid configuration ({source}):\n  " + "\n  ".join(lines))


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"fl.rounds=5"`` -> (["fl", "rounds"], 5); the value is parsed as a YAML scalar or list."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like key=value, e.g. fl.rounds=5")
    key, raw = text.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"override '{text}' has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str | int | float | bool | list | dict) or value is None:
        return parts, value
    return parts, raw


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set each dotted ``key=value`` in a nested dict (a copy); validation happens afterwards."""
    out: dict[str, Any] = yaml.safe_load(yaml.safe_dump(data)) or {}
    for text in overrides:
        parts, value = parse_override(text)
        node = out
        for p in parts[:-1]:
            child = node.get(p)
            if not isinstance(child, dict):
                child = {} if child is None or not isinstance(child, str) else {"uplink": child}
                node[p] = child
            node = child
        node[parts[-1]] = value
    return out


def config_from_dict(data: dict[str, Any], source: str = "config") -> Config:
    """Validate a nested dict into a :class:`Config` (errors as :class:`ConfigError`)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections, got {type(data).__name__}")
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise _explain(exc, source) from None


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Read a YAML config (defaults if ``path`` is None), apply ``key=value`` overrides, validate."""
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file '{p}' does not exist")
        try:
            loaded = yaml.safe_load(p.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file '{p}' is not valid YAML: {exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config file '{p}': the top level must be a mapping of sections")
        data = loaded or {}
        source = str(p)
    if overrides:
        data = apply_overrides(data, overrides)
        source += " with overrides " + " ".join(overrides)
    return config_from_dict(data, source)


# ----------------------------------------------------------------------------------- commented YAML


def _scalar(v: Any) -> str:
    text = yaml.safe_dump(v, default_flow_style=True).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def commented_yaml(model: BaseModel, indent: int = 0) -> str:
    """``model`` as YAML with each field's description as a comment (for ``--print-config``)."""
    lines: list[str] = []
    pad = "  " * indent
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        desc = field.description or ""
        if isinstance(value, BaseModel):
            doc = (type(value).__doc__ or "").strip().splitlines()[0] if type(value).__doc__ else ""
            lines.append(f"{pad}{name}:" + (f"  # {desc or doc}" if (desc or doc) else ""))
            lines.append(commented_yaml(value, indent + 1))
        else:
            dumped = _scalar(
                value.model_dump(mode="json")
                if isinstance(value, BaseModel)
                else (list(value) if isinstance(value, tuple) else value)
            )
            lines.append(f"{pad}{name}: {dumped}" + (f"  # {desc}" if desc else ""))
    return "\n".join(line for line in lines if line)
