"""What every user shares: synchronising with the server payload, local privacy, metadata, repr.

Sign convention (once, for the whole package): a multi-step user's ``gradients`` entry is the parameter
difference ``p_local - p_server`` (where local training moved the model); a single-step user's is the
gradient of the loss (the direction of *increase*). The server turns both into a pseudo-gradient.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from fedwave.errors import ConfigError
from fedwave.rng import torch_generator
from fedwave.users.config import UserConfig
from fedwave.users.plot import image_grid, save_png
from fedwave.users.privacy import add_noise_, sample_noise
from fedwave.users.tensors import load_buffers, load_parameters, persistent_buffers, snapshot

if TYPE_CHECKING:
    from matplotlib.figure import Figure

Payload = dict[str, Any]
SharedData = dict[str, Any]
TrueData = dict[str, Any]
LossFn = nn.Module


class User:
    """A user (UE) holding private data ``(inputs, labels)`` and answering server queries.

    Args:
        model: the architecture; the user trains its own deep copy (or ``working_model`` if given, a
            copy it may share with users that run one after another).
        loss_fn: a mean-reduced loss, ``loss_fn(logits, labels)``.
        inputs, labels: this user's samples (all the samples it holds for a query).
        cfg: the user configuration (``cfg_case.user``).
        setup: ``{"device": torch.device, "dtype": torch.dtype}``.
        seed: the run seed from which the user's random streams are derived.
        data_key: ``"inputs"`` for tensors, ``"input_ids"`` for token data.
        working_model: see ``model``.
        initial_buffers: the buffers every query starts from when the server sends none (default: a
            snapshot of ``model``'s persistent buffers, i.e. the server's model at construction; users
            sharing a working model may share one snapshot).
        metadata: dataset facts (``mean``, ``std``, ``class_names``...) used by :meth:`plot`; filled from
            the server payload's metadata when missing here.
    """

    kind = "user"

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        inputs: torch.Tensor,
        labels: torch.Tensor,
        cfg: UserConfig,
        setup: dict[str, Any],
        *,
        user_idx: int = 0,
        seed: int = 0,
        data_key: str = "inputs",
        working_model: nn.Module | None = None,
        initial_buffers: Sequence[torch.Tensor] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.setup = setup
        self.cfg = cfg
        self.user_idx = user_idx
        self.seed = seed
        self.data_key = data_key
        self.loss_fn = loss_fn
        self.model = working_model if working_model is not None else copy.deepcopy(model)
        self.model.to(**setup)
        self.initial_buffers: list[torch.Tensor] = (
            list(initial_buffers) if initial_buffers is not None else snapshot(persistent_buffers(model))
        )
        self.metadata: dict[str, Any] = dict(metadata or {})
        dtype = setup.get("dtype", torch.float32)
        self.inputs = inputs.to(
            device=setup.get("device"), dtype=dtype if inputs.is_floating_point() else None
        )
        self.labels = labels.to(device=setup.get("device"))
        self.counted_queries = 0
        dp = cfg.local_diff_privacy
        self.clip_value = dp.per_example_clipping
        self.gradient_noise = dp.gradient_noise
        self.input_noise = dp.input_noise
        self.noise_distribution = dp.distribution

    # ----------------------------------------------------------------- helpers for subclasses
    @property
    def num_data_points(self) -> int:
        """Number of samples the user holds for a query."""
        return int(self.labels.shape[0])

    def _generator(self, purpose: str) -> torch.Generator:
        return torch_generator(self.seed, "user", self.user_idx, "query", self.counted_queries, purpose)

    def _begin_query(
        self,
        server_payload: Payload,
        custom_data: dict[str, torch.Tensor] | None,
        rng: torch.Generator | None,
        purpose: str,
    ) -> tuple[torch.Generator, torch.Tensor, torch.Tensor]:
        """Start one query: count it, pick its generator (``rng`` or the user's stream for ``purpose``),
        load the data to train on and the server's state. Returns the generator, inputs and labels."""
        self.counted_queries += 1
        gen = rng if rng is not None else self._generator(purpose)
        x, y = self._load_data(custom_data)
        self._synchronize(server_payload)
        return gen, x, y

    def _synchronize(self, server_payload: Payload) -> None:
        """Load the server's state: parameters, and buffers; choose train or eval mode as users.md says.

        With buffers in the payload the model runs in ``eval()`` mode on the server's statistics, unless
        ``server_payload["metadata"]["buffers_mode"] == "train"`` (fedwave's FL loop: the BS hands over its
        running statistics as the starting point of local training in ``train()`` mode). Without buffers in
        the payload the model runs in ``train()`` mode from :attr:`initial_buffers`, so every query (and
        every sub-user of a ``MultiUserAggregate``) starts from the same statistics: nothing carries over
        from an earlier query or from another user of a shared working model.
        """
        load_parameters(self.model, server_payload["parameters"])
        buffers = server_payload.get("buffers")
        meta = server_payload.get("metadata") or {}
        mode = meta.get("buffers_mode", "eval")
        for key in ("mean", "std", "class_names", "classes", "name", "shape"):
            if key in meta:
                self.metadata.setdefault(key, meta[key])
        if buffers is not None:
            load_buffers(self.model, buffers)
            self.model.train(mode == "train")
        else:
            load_buffers(self.model, self.initial_buffers)
            self.model.train()

    def _load_data(self, custom_data: dict[str, torch.Tensor] | None) -> tuple[torch.Tensor, torch.Tensor]:
        if custom_data is None:
            return self.inputs, self.labels
        key = self.data_key if self.data_key in custom_data else "inputs"
        if key not in custom_data or "labels" not in custom_data:
            raise ValueError(f"custom_data needs the keys '{self.data_key}' and 'labels'")
        return custom_data[key], custom_data["labels"]

    def _noisy_inputs(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.input_noise <= 0:
            return x
        noise = sample_noise(
            x.shape, self.input_noise, self.noise_distribution, generator=generator, dtype=x.dtype
        )
        return x + noise.to(x.device)

    def _add_gradient_noise(self, grads: Sequence[torch.Tensor], generator: torch.Generator) -> None:
        add_noise_(grads, self.gradient_noise, self.noise_distribution, generator=generator)

    def _shared_buffers(self, server_payload: Payload) -> list[torch.Tensor] | None:
        """Local buffers if ``provide_buffers`` and they are the user's own (the server sent none, or
        sent its statistics as a train-mode starting point); otherwise None."""
        if not self.cfg.provide_buffers:
            return None
        mode = (server_payload.get("metadata") or {}).get("buffers_mode", "eval")
        if server_payload.get("buffers") is None or mode == "train":
            return snapshot(persistent_buffers(self.model))
        return None

    def _metadata(
        self, labels: torch.Tensor | None, num_data: int, hyper: dict[str, Any] | None
    ) -> dict[str, Any]:
        show = self.cfg.provide_labels and labels is not None
        return {
            "num_data_points": num_data if self.cfg.provide_num_data_points else None,
            "labels": torch.sort(labels.detach().cpu())[0] if show and labels is not None else None,
            "local_hyperparams": hyper,
            "data_key": self.data_key,
        }

    # ----------------------------------------------------------------- public API
    def compute_local_updates(
        self,
        server_payload: Payload,
        custom_data: dict[str, torch.Tensor] | None = None,
        *,
        rng: torch.Generator | None = None,
        return_true_user_data: bool = True,
    ) -> tuple[SharedData, TrueData]:
        """Answer one server query: ``(shared_data, true_user_data)``.

        ``shared_data = {"gradients": [...], "buffers": [...] | None, "metadata": {...}}`` is what the
        server receives; ``true_user_data = {"data", "labels", "buffers"}`` is for evaluating attacks only.
        ``rng`` (fedwave extension) supplies the query's randomness (noise, shuffling, dropout masks); by
        default a stream derived from (seed, user, query count) is used. ``return_true_user_data=False``
        (the original framework's ``MultiUserAggregate`` flag, accepted by every user) skips copying the
        true data: ``true_user_data`` then holds ``None`` under each key.
        """
        raise NotImplementedError

    def _true_data(self, x: torch.Tensor, y: torch.Tensor, enabled: bool = True) -> TrueData:
        """``true_user_data``: the inputs and labels actually used, and the local buffers (attacks only)."""
        if not enabled:
            return {"data": None, "labels": None, "buffers": None}
        return {
            "data": x.detach().clone(),
            "labels": y.detach().clone(),
            "buffers": snapshot(persistent_buffers(self.model)),
        }

    def plot(
        self,
        user_data: dict[str, Any],
        scale: bool = False,
        print_labels: bool = False,
        *,
        path: str | Path | None = None,
    ) -> Figure:
        """A grid of the samples in ``user_data`` (true data, or a reconstruction with the same keys).

        Samples are de-normalised with the dataset's ``mean``/``std`` from :attr:`metadata` (``scale``:
        per-sample min-max instead); ``print_labels`` titles each panel with its class name (or index).
        Returns the (headless) figure; with ``path`` it is also written there as a PNG.

        Raises:
            ConfigError: no dataset mean/std is known to this user, or the data cannot be drawn.
        """
        if not scale and ("mean" not in self.metadata or "std" not in self.metadata):
            raise ConfigError(
                "plot: this user knows no dataset mean/std; build its UserDataSource with "
                "metadata={'mean': ..., 'std': ...} (UserDataSource.from_dataset does), or pass scale=True"
            )
        labels = user_data.get("labels") if print_labels else None
        fig = image_grid(
            user_data["data"],
            mean=self.metadata.get("mean", 0.0),
            std=self.metadata.get("std", 1.0),
            scale=scale,
            labels=labels,
            class_names=self.metadata.get("class_names"),
        )
        if path is not None:
            save_png(fig, path)
        return fig

    def _threat_model_lines(self) -> list[str]:
        dp = self.cfg.local_diff_privacy
        shares = ["gradients" if self.kind == "single step" else "parameter differences"]
        if self.cfg.provide_labels:
            shares.append("labels")
        if self.cfg.provide_num_data_points:
            shares.append("number of samples")
        if self.cfg.provide_buffers:
            shares.append("buffers")
        return [
            f"    shares: {', '.join(shares)}",
            f"    input noise: {dp.input_noise} ({dp.distribution}), gradient noise: {dp.gradient_noise} "
            f"({dp.distribution}), per-example clipping: {dp.per_example_clipping or 'off'}"
            + ("  [unaccounted: absolute noise scale]" if dp.gradient_noise or dp.input_noise else ""),
        ]

    def __repr__(self) -> str:
        n_params = sum(p.numel() for p in self.model.parameters())
        lines = [
            f"{type(self).__name__} ({self.kind}) user_idx={self.user_idx}",
            f"    data: {self.num_data_points} samples of shape {tuple(self.inputs.shape[1:])} "
            f"({self.data_key}), model: {n_params:,} parameters on {self.setup.get('device', 'cpu')} "
            f"as {self.setup.get('dtype', torch.float32)}",
            f"    queries so far: {self.counted_queries}",
            *self._threat_model_lines(),
        ]
        return "\n".join(lines)


def make_setup(device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> dict[str, Any]:
    """``{"device": ..., "dtype": ...}`` as threaded through the user layer."""
    return {"device": torch.device(device), "dtype": dtype}
