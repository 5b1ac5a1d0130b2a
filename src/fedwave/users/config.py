"""``cfg_case.user``: the user's configuration, with the field names of the original framework."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from fedwave.configbase import Section

UserType = Literal["local_gradient", "local_update", "multiuser_aggregate"]


class LocalDPConfig(Section):
    """Local privacy measures of a user (absolute scales: the *unaccounted* compatibility mode)."""

    gradient_noise: float = Field(0.0, ge=0.0, description="scale of the noise added to gradients (0 = off)")
    input_noise: float = Field(
        0.0, ge=0.0, description="scale of the noise added to inputs before each forward"
    )
    distribution: Literal["gaussian", "laplacian"] = Field(
        "gaussian", description="noise distribution: gaussian (std = scale) or laplacian (b = scale)"
    )
    per_example_clipping: float = Field(
        0.0, ge=0.0, description="L2 clip value (global norm over all tensors); 0 = off"
    )


class UserConfig(Section):
    """The user (client) of users.md. ``None`` values take the default of the user type."""

    user_type: UserType = Field(
        "local_gradient", description="local_gradient | local_update | multiuser_aggregate"
    )
    user_idx: int = Field(0, ge=0, description="which user's data")
    user_range: tuple[int, int] = Field((0, 10), description="half-open range of users (multiuser_aggregate)")
    num_data_points: int | Literal["all"] | None = Field(
        None,
        description="samples held for a query (>= 1, or 'all' of the user's partition); "
        "default 1 (single step), 4 (multi step)",
    )
    num_local_updates: int = Field(4, ge=1, description="local SGD steps (multi step)")
    num_data_per_local_update_step: int = Field(1, ge=1, description="samples per local step (multi step)")
    local_learning_rate: float = Field(1e-3, ge=0.0, description="local SGD learning rate (multi step)")
    local_epochs: int | None = Field(
        None,
        ge=1,
        description="FL notation: if set, E epochs of ceil(n/B) steps of B samples "
        "(B = num_data_per_local_update_step) replace num_local_updates",
    )
    shuffle: bool = Field(False, description="reshuffle the user's samples each local epoch (seeded)")
    provide_labels: bool = Field(False, description="share the sorted labels in metadata")
    provide_num_data_points: bool = Field(True, description="share the number of samples")
    provide_buffers: bool = Field(False, description="share the model buffers (BatchNorm statistics)")
    provide_local_hyperparams: bool | None = Field(
        None, description="share lr, steps, data per step and per-step labels; default true (multi step)"
    )
    exact_batch_statistics: bool | None = Field(
        None,
        description="single step in train mode: reset the BatchNorm running statistics and use momentum "
        "None for the step, so they become exactly the batch's mean and unbiased variance (as the "
        "original framework does); default (None): on when the server sends no buffers, off otherwise",
    )
    multiuser_weighting: Literal["uniform", "samples"] = Field(
        "uniform", description="multiuser_aggregate: arithmetic mean (uniform) or weighted by samples"
    )
    local_diff_privacy: LocalDPConfig = Field(default_factory=LocalDPConfig)

    @model_validator(mode="after")
    def _check_range(self) -> UserConfig:
        if isinstance(self.num_data_points, int) and self.num_data_points < 1:
            raise ValueError(f"num_data_points must be >= 1 or 'all', got {self.num_data_points}")
        lo, hi = self.user_range
        if lo < 0 or hi <= lo:
            raise ValueError(
                f"user_range must be [start, stop) with 0 <= start < stop, got {list(self.user_range)}"
            )
        return self
