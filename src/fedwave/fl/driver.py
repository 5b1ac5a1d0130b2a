"""The federated-learning side of a round, driven by the simulated clock.

The clock (``fedwave.sim``) decides *when* things happen; this driver decides *what* happens:

    select UEs -> UEs train (users) -> [faulty UEs misbehave] -> encode (codecs) -> [air: clock]
      -> BS decodes, rejects NaN/Inf, aggregates, rolls back a diverging step (server) -> evaluate

Every dispatch of a UE gets its own handle: an update is aggregated at most once (``aggregate``) or
discarded with its reason (``discard``: lost, dropped, silent, in flight at the end). Randomness is
derived from (seed, round, UE, purpose). The driver's state between rounds (global model, optimizer,
broadcast copy, per-UE codec and trigger state) is captured by :meth:`FederatedDriver.state_dict`.

Differential privacy (``dp.level`` client or sample, :mod:`fedwave.fl.dp`): under ``fl.sampling:
poisson`` each UE joins a round independently with probability q; at client level each UE clips (and,
with distributed placement, noises) its update before any fault and before encoding, the BS forms
DP-FedAvg's noised fixed-denominator mean, and the round is accounted at its end; at sample level the UEs
train by DP-SGD (:class:`~fedwave.users.dpsgd.UserDPSGD`). The ledger is part of the driver's state.

Event-triggered uploads compare a UE's local model with the last one the BS *received* from it: the
reference moves when an update is aggregated, never when it is merely encoded. An error-feedback UE
whose message never reached the BS (lost, dropped, silent, in flight) takes that message back into its
residual, so nothing it computed is lost for good.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from fedwave.adversary import Behaviour, BehaviourContext, MisbehaviourPlan
from fedwave.channel.aircomp import aggregate_analog, aggregate_one_bit, received_noise_var
from fedwave.codecs import Codec, CodecState, TensorMeta, get_codec, metas_of
from fedwave.config import Config
from fedwave.engine import Executor, Work
from fedwave.engine.device import explain_training_error, training_device
from fedwave.errors import ConfigError, FedwaveError, PayloadError
from fedwave.fl.dp import RunPrivacy
from fedwave.fl.selection import RADIO_RULES, SELECTIONS, SelectionContext, checked, get_selection, pf_update
from fedwave.fl.summary import RoundTotals
from fedwave.records import RoundRecord, UEEvent
from fedwave.rng import numpy_generator, torch_generator
from fedwave.server import BaseStation, ReceivedUpdate, is_finite
from fedwave.sim.aircomp import AirChannel
from fedwave.sim.protocol import Arrival, LocalResult
from fedwave.sim.radio import RadioView
from fedwave.sim.trigger import should_upload
from fedwave.users import User, UserDataSource, construct_user
from fedwave.users.privacy import global_norm
from fedwave.users.tensors import persistent_buffers

RoundCallback = Callable[[RoundRecord, Sequence[UEEvent]], None]
TrainTask = tuple[int, int, int, int, Behaviour | None]  # round, UE, model version, dispatch, behaviour
_LOG = logging.getLogger("fedwave.engine")
_FP32 = "fp32"


class RunStalled(FedwaveError):
    """The run aggregated no update for ``server.max_idle_rounds`` rounds in a row."""


@dataclass
class _Pending:
    """An encoded update between a UE's local training and the BS's decode (or its discard)."""

    ue: int
    round: int
    message: bytes  # uplink codec bytes of the update
    buffers: bytes | None  # fp32 bytes of the UE's buffers (BatchNorm statistics), if any
    num_samples: int
    skip: bool
    reference: list[torch.Tensor] | None  # the UE's local model, the trigger's reference once delivered
    honest: bool = True  # the UE followed the protocol (no fault applied)


class FederatedDriver:
    """FL logic for the clock: selection, local updates, encoding, aggregation, evaluation.

    Args:
        cfg: the run configuration.
        model: the initial global model.
        data: the UEs' partitioned training data.
        x_test, y_test: the BS's held-out test split.
        executor: how client work is run (``fedwave.engine``).
        on_round: called with each finished round's record and UE events.
        metadata: dataset metadata carried in server payloads.
        privacy: the run's differential privacy (None when ``dp.level`` is off).
    """

    def __init__(
        self,
        cfg: Config,
        model: nn.Module,
        data: UserDataSource,
        x_test: torch.Tensor,
        y_test: torch.Tensor,
        executor: Executor,
        on_round: RoundCallback | None = None,
        metadata: dict[str, Any] | None = None,
        privacy: RunPrivacy | None = None,
        keep_records: bool = True,
    ) -> None:
        self.cfg = cfg
        self.privacy = privacy
        self.seed = cfg.seed
        self.executor = executor
        self.on_round = on_round
        device = self.device = training_device(cfg.engine.device, cfg.engine.deterministic)
        setup: dict[str, Any] = {"device": device, "dtype": torch.float32}
        self.loss_fn = nn.CrossEntropyLoss()
        self.bs = BaseStation(
            model,
            cfg.server,
            algorithm=cfg.fl.algorithm,
            weighting=cfg.fl.weighting,
            x_test=x_test.to(device),
            y_test=y_test.to(device),
            metadata=metadata,
            dp=privacy.aggregation() if privacy is not None else None,
        )
        # The layouts the BS expects: payloads describing other tensors are refused before any allocation.
        self._update_layout = metas_of(self.bs.parameters_snapshot())
        self._buffer_layout = [
            TensorMeta(tuple(b.shape), torch.float32) for b in persistent_buffers(self.bs.model)
        ]
        # UEs train one after another, so they share one working copy of the model.
        working = copy.deepcopy(self.bs.model)
        self.users: list[User] = [
            self._make_user(model, k, setup, data, working) for k in range(cfg.fl.num_ues)
        ]
        self.uplink: Codec = get_codec(cfg.codec.uplink)
        self.downlink: Codec = get_codec(cfg.codec.downlink)
        self.raw: Codec = get_codec(_FP32)
        self.misbehaviour = MisbehaviourPlan(cfg.faults, cfg.adversary, cfg.fl.num_ues, cfg.seed)
        self.num_classes = int((metadata or {}).get("classes", int(y_test.max()) + 1))
        self.codec_state: MutableMapping[int, CodecState] = self._codec_states()
        self.trigger = cfg.wireless.event_trigger
        self.last_uploaded: dict[int, list[torch.Tensor]] = {}
        self.last_update: dict[int, ReceivedUpdate] = {}
        # The model the UEs hold (the broadcast copy) and its downlink message, per BS version.
        self.broadcast_params = self.bs.parameters_snapshot()
        self.downlink_state: CodecState = {}
        self._payloads: dict[int, dict[str, Any]] = {}
        self._downlink_bytes: dict[int, int] = {}
        self._select_calls: dict[int, int] = {}
        self._dispatch_calls: dict[tuple[int, int], int] = {}
        self._next_handle = 0
        self._pending: dict[int, _Pending] = {}
        self._round_fate: dict[int, dict[int, str]] = {}
        self._idle_rounds = 0
        self._round_agg: tuple[int, bool, float, int] = (0, False, 0.0, 0)
        self._round_dp: dict[int, dict[str, int]] = {}  # per round: planned, delivered, clipped counts
        self._air_extra: dict[int, dict[str, float]] = {}  # per round: AirComp figures for the record
        self.aggregated_total = 0  # updates that entered the global model and stayed (all rounds)
        self.selection = get_selection(cfg.fl.selection)
        #: Whether the clock should hand this driver each round's channel estimate (observe_radio): only
        #: rules that may read it (the channel-aware built-ins and plug-ins); drawing the pilots of every
        #: UE each round would otherwise cost time for nothing.
        self.wants_radio = cfg.fl.sampling != "poisson" and (
            cfg.fl.selection in RADIO_RULES or cfg.fl.selection not in SELECTIONS
        )
        self.last_selected: dict[int, int] = {}  # UE -> last round it was selected in
        self.times_selected: dict[int, int] = {}  # UE -> rounds it was selected in so far
        self.pf_average: dict[int, float] = {}  # UE -> proportional fair's averaged served rate (bit/s)
        self.last_payload: dict[int, int] = {}  # UE -> payload bytes of its last update (predictions)
        self._radio: RadioView | None = None  # the clock's channel estimate of the round being opened
        self._fp32_bytes: int | None = None
        #: Every round's record when ``keep_records`` (the library's runs); a run that streams its records
        #: (``rounds.csv``, a study's store) keeps none, and memory does not grow with the rounds.
        self.records: list[RoundRecord] = []
        self.keep_records = keep_records
        self.totals = RoundTotals()  # what the summary needs of the records, folded round by round
        self._fallbacks: set[str] = set()  # why some UEs were not vectorised (logged once each)
        self._batch_reason: dict[int, str | None] = {}  # per UE: why it cannot be vectorised (None: it can)
        self._written_out_alone: bool | None = None  # whether a lone UE takes the written-out step (the
        # working model, shared by all UEs, never changes during a run: asked once)
        if cfg.wireless.access.scheme == "aircomp" and self.bs.has_buffers:
            raise ConfigError(
                f"model.name={cfg.model.name!r} has persistent buffers (BatchNorm statistics), which "
                "access.scheme 'aircomp' cannot carry (its analog sum holds the parameters' update only); "
                "choose a model without BatchNorm or access.scheme fdma/tdma"
            )
        self._prepare_broadcast()

    def _codec_states(self) -> MutableMapping[int, CodecState]:
        """Per-UE codec state: a dict, or at most ``engine.codec_states_in_memory`` in memory (the rest
        spilled to disk, :mod:`fedwave.engine.spill`)."""
        limit = self.cfg.engine.codec_states_in_memory
        if limit is None:
            return {}
        from fedwave.engine.spill import SpilledStates

        return SpilledStates(limit)

    def _make_user(
        self, model: nn.Module, k: int, setup: dict[str, Any], data: UserDataSource, working: nn.Module
    ) -> User:
        """UE ``k``: the user type of ``cfg.user`` (users.md), or a DP-SGD user at sample level."""
        user_cfg = self.cfg.user.model_copy(update={"user_idx": k})
        if self.privacy is not None and self.privacy.level == "sample":
            return self.privacy.dpsgd_user(model, self.loss_fn, user_cfg, setup, data, working)
        case = _Case(user_cfg, self.seed)
        return construct_user(
            model, self.loss_fn, case, setup, data=data, seed=self.seed, working_model=working
        )

    # ------------------------------------------------------------------ downlink
    def _prepare_broadcast(self) -> None:
        """Encode the current model for the UEs and update their copy.

        Version 0 (the initial model) always goes out exactly, as fp32: a lossy codec applied to a whole
        model (not to a change of it) would start every UE from a damaged model. Later versions send the
        change since the last broadcast through ``codec.downlink``.
        """
        version = self.bs.version
        current = self.bs.parameters_snapshot()
        rng = torch_generator(self.seed, "downlink", version)
        if version == 0 or self.downlink.exact:
            codec = self.downlink if self.downlink.exact else self.raw
            msg = codec.encode(current, rng=rng)
            self.broadcast_params = current
        else:
            delta = [c - b for c, b in zip(current, self.broadcast_params)]
            msg = self.downlink.encode(delta, rng=rng, state=self.downlink_state)
            decoded = self.downlink.decode(msg)
            self.broadcast_params = [b + d for b, d in zip(self.broadcast_params, decoded)]
        payload = self.bs.payload()
        payload["parameters"] = [p.clone() for p in self.broadcast_params]
        size = len(msg)
        if payload["buffers"] is not None:
            size += len(
                self.raw.encode(
                    [b.float() for b in payload["buffers"]], rng=torch_generator(self.seed, "buf")
                )
            )
        self._payloads[version] = payload
        self._downlink_bytes[version] = size
        for old in [v for v in self._payloads if v < version - 64]:
            del self._payloads[old], self._downlink_bytes[old]

    def broadcast_bytes(self) -> int:
        """Bytes of the current downlink message (codec bytes of the model change, plus buffers)."""
        return self._downlink_bytes[self.bs.version]

    # ------------------------------------------------------------------ selection
    def observe_radio(self, view: RadioView) -> None:
        """The clock's channel estimate for the round about to be opened (for channel-aware rules)."""
        self._radio = view

    def _radio_fields(self, round: int, count: int) -> dict[str, Any]:
        """SelectionContext's radio fields for ``round``, if the clock gave this round's estimate.

        Predictions for ``deadline_aware``: the current broadcast's bytes, the UE's samples
        (epochs x its data points, as its local update will process) and its payload bytes (those of its
        last update, or the fp32 size of the model before it sent one), its upload on W / count.
        """
        view = self._radio
        if view is None or view.round != round:
            return {}
        share = view.bandwidth_hz / max(1, count)
        epochs = self.cfg.fl.local_epochs if self.cfg.fl.algorithm == "fedavg" else 1
        dl_bytes = self.broadcast_bytes()

        def predict_time_s(ue: int) -> float:
            samples = epochs * self.users[ue].num_data_points
            payload = self.last_payload.get(ue)
            if payload is None:
                payload = self._fp32_size()
            return (
                view.downlink_time_s(ue, dl_bytes)
                + view.compute_time_s(ue, samples)
                + view.upload_time_s(ue, payload, share)
            )

        return {
            "snr": [float(x) for x in view.snr],
            "rate_bps": [view.rate_bps(u, share) for u in range(len(view.snr))],
            "pf_average": self.pf_average,
            "predict_time_s": predict_time_s,
            "deadline_s": view.deadline_s,
        }

    def _fp32_size(self) -> int:
        """Bytes of the model's parameters as an fp32 message (the payload guess before a UE's first)."""
        if self._fp32_bytes is None:
            params = self.bs.parameters_snapshot()
            self._fp32_bytes = len(self.raw.encode(params, rng=torch_generator(self.seed, "fp32-size")))
        return self._fp32_bytes

    def select(self, round: int, available: Sequence[int], count: int) -> list[int]:
        """The UEs of a round among ``available`` (sorted ids).

        ``fl.sampling: fixed``: ``count`` UEs chosen by the ``fl.selection`` rule
        (:mod:`fedwave.fl.selection`; ``random``: uniformly without replacement). ``poisson``: each UE
        joins independently with probability q = ``fl.fraction`` (one uniform per UE in id order); the
        count is random and may be 0 (the caller passes ``count`` = all UEs).
        """
        call = self._select_calls.get(round, 0)
        self._select_calls[round] = call + 1
        pool = sorted(int(u) for u in available)
        rng = numpy_generator(self.seed, "select", round, call)
        if self.cfg.fl.sampling == "poisson":
            joins = rng.random(len(pool)) < float(self.cfg.fl.fraction)
            chosen = [int(u) for u, j in zip(pool, joins) if j][:count]
        else:
            radio = self._radio_fields(round, count)
            ctx = SelectionContext(round, pool, count, rng, self.last_selected, self.times_selected, **radio)
            chosen = checked(self.cfg.fl.selection, self.selection(ctx), ctx)
            if self.cfg.fl.selection == "proportional_fair" and ctx.rate_bps is not None:
                self.pf_average = pf_update(self.pf_average, ctx.rate_bps, chosen, self.cfg.fl.pf_window)
        for u in chosen:
            self.last_selected[u] = round
            self.times_selected[u] = self.times_selected.get(u, 0) + 1
        return chosen

    # ------------------------------------------------------------------ local work
    def _train(self, task: TrainTask) -> tuple[int, dict[str, Any]]:
        round, ue, version, dispatch, behaviour = task
        keys: tuple[int, ...] = (round, ue) if dispatch == 0 else (round, ue, dispatch)
        user = self.users[ue]
        custom = None
        if behaviour is not None and behaviour.poison is not None:  # data poisoning: train on altered data
            x, y = behaviour.poison(user.inputs, user.labels, self.num_classes)
            custom = {user.data_key: x, "labels": y}
        shared, _ = user.compute_local_updates(
            self._payloads[version],
            custom,
            rng=torch_generator(self.seed, "train", *keys),
            return_true_user_data=False,
        )
        return ue, shared

    def _train_many(self, tasks: Sequence[TrainTask]) -> list[tuple[int, dict[str, Any]]]:
        """``_train`` of every task; the UEs that share a model version train together (vmap)."""
        from fedwave.engine.batched import (
            hook_reason,
            stack_limit,
            train_multistep_batched,
            unbatchable_reason,
            written_out_alone,
        )

        out: dict[int, tuple[int, dict[str, Any]]] = {}
        groups: dict[tuple[int, str], list[int]] = {}  # (model version, user type) -> tasks
        hooked: dict[tuple[int, int], str | None] = {}  # (model, loss) -> hook_reason, asked once here
        for i, (_, ue, version, _, behaviour) in enumerate(tasks):
            user = self.users[ue]
            if ue not in self._batch_reason:  # a UE's type, loss and model never change during a run
                self._batch_reason[ue] = unbatchable_reason(user, user.model)
            reason = (
                "data poisoning"
                if behaviour is not None and behaviour.poison is not None
                else self._batch_reason[ue]
            )
            if reason is None:  # hooks may come and go between rounds
                pair = (id(user.model), id(user.loss_fn))
                if pair not in hooked:
                    hooked[pair] = hook_reason(user.model, user.loss_fn)
                reason = hooked[pair]
            if reason is None:
                groups.setdefault((version, type(user).__name__), []).append(i)
                continue
            if reason not in self._fallbacks:
                self._fallbacks.add(reason)
                _LOG.warning("engine.executor=batched: %s train one after another (sequential)", reason)
            out[i] = self._train(tasks[i])
        for (version, _), group in groups.items():
            limit = stack_limit(self.users[tasks[group[0]][1]].model)
            for lo in range(0, len(group), limit):
                members = group[lo : lo + limit]
                user = self.users[tasks[members[0]][1]]
                if len(members) == 1 and self._written_out_alone is None:
                    self._written_out_alone = written_out_alone(user.model, user.inputs.shape[1:])
                if len(members) == 1 and not self._written_out_alone:
                    out[members[0]] = self._train(tasks[members[0]])  # nothing to stack with: its own
                    continue
                gens = [
                    torch_generator(self.seed, "train", r, u)
                    if n == 0
                    else torch_generator(self.seed, "train", r, u, n)
                    for r, u, _, n, _ in (tasks[i] for i in members)
                ]
                users = [self.users[tasks[i][1]] for i in members]
                shared = train_multistep_batched(users, self._payloads[version], gens)  # type: ignore[arg-type]
                out.update({i: (tasks[i][1], s) for i, s in zip(members, shared)})
        return [out[i] for i in range(len(tasks))]

    def local_updates(self, round: int, ues: Sequence[int], version: int) -> list[LocalResult]:
        """Train UEs ``ues`` on model ``version`` (through the executor), let faulty and malicious UEs
        misbehave, encode.

        Omniscient attacks (ALIE, IPM) see the honest updates of every UE of this dispatch.
        """
        tasks = []
        plans = []
        for ue in ues:
            n = self._dispatch_calls.get((round, ue), 0)
            self._dispatch_calls[(round, ue)] = n + 1
            plan = self.misbehaviour.behaviour_of(round, int(ue), n)
            plans.append(plan)
            tasks.append((round, int(ue), version, n, None if plan is None else plan[0]))
        try:
            trained = self.executor.map(Work(self._train, self._train_many), tasks)
        except RuntimeError as exc:  # no deterministic kernel, or out of device memory: say what to do
            explained = explain_training_error(exc)
            if explained is None:
                raise
            raise explained from exc
        if self.device.type != "cpu":  # client-level DP, behaviours, codecs: on the CPU, as in a CPU run
            trained = [(k, _on_cpu(shared)) for k, shared in trained]
        honest = [list(shared["gradients"]) for _, shared in trained]
        epochs = self.cfg.fl.local_epochs if self.cfg.fl.algorithm == "fedavg" else 1
        dp_round = self._round_dp.setdefault(round, {"planned": 0, "delivered": 0, "clipped_ue": 0})
        dp_round["planned"] += len(tasks)
        results = []
        for (_, ue, _, n, _), (_, shared), plan in zip(tasks, trained, plans):
            behaviour = None if plan is None else plan[0]
            silent = behaviour is not None and behaviour.silent
            if self.privacy is not None and self.privacy.level == "client" and not silent:
                keys: tuple[int, ...] = (round, ue) if n == 0 else (round, ue, n)
                private, how = self.privacy.privatize(list(shared["gradients"]), keys, len(tasks))
                shared = {**shared, "gradients": private}
                if how is not None:
                    dp_round[f"{how}_ue"] = dp_round.get(f"{how}_ue", 0) + 1
            if plan is not None and not silent:
                b, params = plan
                ctx = BehaviourContext(
                    round,
                    ue,
                    torch_generator(self.seed, "misbehave", round, ue, n),
                    params,
                    honest if b.needs_honest else (),
                    sum(1 for p in plans if p is not None and p[0] is b),
                )
                shared = {**shared, "gradients": b.apply(list(shared["gradients"]), ctx)}
            pending = self._encode(round, ue, version, shared, n, silent)
            pending.honest = behaviour is None
            if not (pending.skip or silent):
                self.last_payload[ue] = len(pending.message) + len(pending.buffers or b"")
            handle = self._next_handle
            self._next_handle += 1
            self._pending[handle] = pending
            results.append(
                LocalResult(
                    payload_bytes=0 if pending.skip else len(pending.message) + len(pending.buffers or b""),
                    samples_processed=epochs * self.users[ue].num_data_points,
                    skip=pending.skip,
                    handle=handle,
                    silent=silent,
                    behaviour="honest" if behaviour is None else behaviour.name,
                )
            )
        return results

    def _encode(
        self, round: int, ue: int, version: int, shared: dict[str, Any], dispatch: int, silent: bool
    ) -> _Pending:
        update: list[torch.Tensor] = [g.detach().cpu() for g in shared["gradients"]]
        num = int(shared["metadata"]["num_data_points"] or self.users[ue].num_data_points)
        if silent:
            return _Pending(ue, round, b"", None, num, False, None)
        reference = None
        skip = False
        if self.trigger.enabled:
            reference = (
                [b + d for b, d in zip(self._payloads[version]["parameters"], update)]
                if self.cfg.fl.algorithm == "fedavg"
                else update
            )
            last = self.last_uploaded.get(ue)
            if last is not None:
                delta = float(global_norm([a - b for a, b in zip(reference, last)]))
                skip = not should_upload(
                    delta, float(global_norm(last)), self.trigger.threshold, self.trigger.mode
                )
        if skip:
            return _Pending(ue, round, b"", None, num, True, None)
        keys: tuple[int, ...] = (round, ue) if dispatch == 0 else (round, ue, dispatch)
        state = self.codec_state.setdefault(ue, {})
        message = self.uplink.encode(update, rng=torch_generator(self.seed, "codec", *keys), state=state)
        bufs = shared["buffers"]
        buf_bytes = None
        if bufs:  # models without buffers send no buffer message at all
            buf_bytes = self.raw.encode(
                [b.detach().cpu().float() for b in bufs], rng=torch_generator(self.seed, "buf")
            )
        return _Pending(ue, round, message, buf_bytes, num, False, reference)

    # ------------------------------------------------------------------ aggregation
    def discard(self, handles: list[object], reason: str) -> None:
        """Forget updates that will never be aggregated; an error-feedback UE takes its message back."""
        for handle in handles:
            pending = self._pending.pop(_handle(handle), None)
            if pending is None:
                raise RuntimeError(f"discard of unknown or already used update handle {handle!r} ({reason})")
            if not pending.message or not self.uplink.stateful:
                continue
            state = self.codec_state.get(pending.ue)
            if not state:
                continue
            try:
                decoded = self.uplink.decode(pending.message, expected=self._update_layout)
            except PayloadError:
                continue
            for i, d in enumerate(decoded):
                key = f"residual.{i}"
                res = state.get(key)
                if isinstance(res, torch.Tensor) and res.shape == d.shape and bool(torch.isfinite(d).all()):
                    state[key] = res + d.to(res.dtype)

    def _take(self, a: Arrival) -> _Pending:
        """The pending update of arrival ``a``, removed from the pending ones (each is used once)."""
        pending = self._pending.pop(_handle(a.handle), None)
        if pending is None:
            raise RuntimeError(f"update handle {a.handle!r} of UE {a.ue} is unknown or was already used")
        return pending

    def aggregate(self, round: int, arrivals: list[Arrival]) -> None:
        """Decode the arrived updates (undecodable -> lost), aggregate, prepare the next broadcast."""
        fate = self._round_fate.setdefault(round, {})
        received: list[ReceivedUpdate] = []
        references: dict[int, list[torch.Tensor]] = {}
        honest: set[int] = set()  # UEs whose decoded update is an honest one (a delivered DP noise share)
        for a in arrivals:
            pending = self._take(a)
            if pending.skip:
                fate[a.ue] = "skipped"
                if self.trigger.on_skip == "reuse" and a.ue in self.last_update:
                    prev = self.last_update[a.ue]
                    received.append(
                        ReceivedUpdate(a.ue, prev.tensors, prev.num_samples, prev.buffers, a.weight)
                    )
                continue
            try:
                tensors = self.uplink.decode(pending.message, expected=self._update_layout)
                buffers = self._decode_buffers(pending.buffers)
            except PayloadError:
                fate[a.ue] = "undecodable"
                continue
            update = ReceivedUpdate(a.ue, tensors, pending.num_samples, buffers, a.weight)
            received.append(update)
            if pending.honest:
                honest.add(a.ue)
            if pending.reference is not None:
                references[a.ue] = pending.reference
        noise = self.privacy.noise_generator(round) if self.privacy is not None else None
        outcome = self.bs.aggregate(received, noise)
        for ue in outcome.rejected:
            fate[ue] = "rejected"
        for ue in outcome.unaggregated:
            fate[ue] = "unaggregated"
        dp_round = self._round_dp.setdefault(round, {"planned": 0, "delivered": 0, "clipped_ue": 0})
        dp_round["delivered"] += sum(1 for ue in outcome.aggregated if ue in honest)
        dp_round["clipped_bs"] = dp_round.get("clipped_bs", 0) + len(outcome.dp_clipped)
        kept = [] if outcome.rolled_back else outcome.aggregated
        if outcome.rolled_back:
            for ue in outcome.aggregated:
                fate[ue] = "rolled_back"
        for ue in kept:
            if ue in references:
                self.last_uploaded[ue] = references[ue]
            if self.trigger.enabled and self.trigger.on_skip == "reuse":
                upd = next(u for u in received if u.ue == ue)
                if is_finite(upd.tensors):
                    self.last_update[ue] = upd
        new = sum(1 for a in arrivals if not a.skip and a.ue in kept)
        self.aggregated_total += new
        self._round_agg = (len(kept), outcome.rolled_back, outcome.step_norm, len(outcome.clipped))
        self._prepare_broadcast()

    def update_entries(self) -> int:
        """Real entries of one update (the number of model parameters)."""
        return sum(math.prod(m.shape) for m in self._update_layout)

    def aggregate_over_air(self, round: int, arrivals: list[Arrival], air: AirChannel) -> None:
        """The BS's step with the over-the-air estimate of the active UEs' mean update (AirComp).

        Weights ``w_k``: ``n_k / sum n`` (``fl.weighting: samples``) or ``1 / K``; analog mode: the weighted
        mean plus the received noise; one-bit mode: the majority vote scaled by ``sum_k w_k mean|u_k|``
        (:mod:`fedwave.channel.aircomp`). Noise from the stream ``(seed, "aircomp-noise", round)``. The
        round's figures go to ``record.extra``: ``aircomp_noise_std`` (per coordinate of the aggregate,
        model units), ``aircomp_noise_multiplier`` (the noise std on the received sum of the weight-scaled
        updates over the largest of their L2 norms: the z of a Gaussian mechanism of that sensitivity),
        ``aircomp_flip_rate`` (one-bit: votes flipped by the noise, among coordinates with a majority).
        """
        fate = self._round_fate.setdefault(round, {})
        ues: list[int] = []
        flat: list[torch.Tensor] = []
        counts: list[float] = []
        for a in arrivals:
            pending = self._take(a)
            try:
                tensors = self.uplink.decode(pending.message, expected=self._update_layout)
            except PayloadError:
                fate[a.ue] = "undecodable"
                continue
            ues.append(a.ue)
            flat.append(torch.cat([t.reshape(-1).to(torch.float64) for t in tensors]))
            counts.append(float(pending.num_samples) if self.cfg.fl.weighting == "samples" else 1.0)
        extra: dict[str, float] = {}
        mean: list[torch.Tensor] = []
        if ues:
            u = torch.stack(flat).numpy()
            w = np.asarray(counts) / sum(counts)
            rng = numpy_generator(self.seed, "aircomp-noise", round)
            if air.mode == "one_bit":
                vote = aggregate_one_bit(u, w, air.rho0_w, air.noise_power_w, rng)
                estimate = vote.estimate
                extra["aircomp_flip_rate"] = vote.flip_rate
                extra["aircomp_scale"] = vote.scale
                extra["aircomp_vote_noise_std"] = math.sqrt(received_noise_var(air.rho0_w, air.noise_power_w))
            else:
                res = aggregate_analog(u, w, air.rho0_w, air.noise_power_w, rng)
                estimate = res.estimate
                sensitivity = float(np.max(np.linalg.norm(len(ues) * w[:, None] * u, axis=1)))
                extra["aircomp_noise_std"] = res.noise_std
                extra["aircomp_noise_multiplier"] = (
                    res.sum_noise_std / sensitivity if sensitivity > 0 else math.inf
                )
            offset = 0
            for meta in self._update_layout:
                n = math.prod(meta.shape)
                chunk = torch.from_numpy(estimate[offset : offset + n].copy())
                mean.append(chunk.reshape(meta.shape).to(torch.float32))
                offset += n
        outcome = self.bs.step_along(mean, ues)
        self._air_extra[round] = extra
        if outcome.rolled_back:
            for ue in ues:
                fate[ue] = "rolled_back"
        kept = [] if outcome.rolled_back else ues
        self.aggregated_total += len(kept)
        self._round_agg = (len(kept), outcome.rolled_back, outcome.step_norm, 0)
        self._prepare_broadcast()

    def _decode_buffers(self, message: bytes | None) -> list[torch.Tensor] | None:
        if message is None:
            return None
        decoded = self.raw.decode(message, expected=self._buffer_layout)
        templates = persistent_buffers(self.bs.model)
        return [
            d.to(t.dtype) if t.is_floating_point() else d.round().to(t.dtype)
            for d, t in zip(decoded, templates)
        ]

    def end_round(self, record: RoundRecord, events: Sequence[UEEvent]) -> bool:
        """Evaluate, complete the record, hand it on; False stops the run (target reached).

        Raises:
            RunStalled: no update was aggregated for ``server.max_idle_rounds`` rounds in a row.
        """
        fate = self._round_fate.pop(record.round, {})
        for ev in events:
            if ev.ue in fate and ev.status == "arrived":
                ev.status = fate[ev.ue]
        record.rejected = sum(1 for ev in events if ev.status == "rejected")
        record.rolled_back = sum(1 for ev in events if ev.status == "rolled_back")
        undecodable = sum(1 for ev in events if ev.status == "undecodable")
        unaggregated = sum(1 for ev in events if ev.status == "unaggregated")
        record.lost += undecodable
        record.arrived -= record.rejected + record.rolled_back + undecodable + unaggregated
        if unaggregated:
            record.extra["unaggregated"] = float(unaggregated)
        record.samples = sum(ev.samples for ev in events if ev.status == "arrived")
        kept, _, step_norm, clipped = self._round_agg
        self._round_agg = (0, False, 0.0, 0)
        record.extra.update(self._air_extra.pop(record.round, {}))
        record.extra["step_norm"] = step_norm
        record.extra["clipped"] = float(clipped)
        result = self.bs.evaluate()
        record.accuracy, record.loss = result.accuracy, result.loss
        record.bytes_down = record.bytes_down or sum(ev.bytes_down for ev in events)
        keep_private = self._account(record, events)
        self.totals.add(record)
        if self.keep_records:
            self.records.append(record)
        for key in [k for k in self._dispatch_calls if k[0] <= record.round]:
            del self._dispatch_calls[key]
        self._select_calls.pop(record.round, None)
        if self.on_round is not None:
            self.on_round(record, events)
        skipped_all = record.selected > 0 and record.skipped == record.selected
        if record.selected > 0:  # a Poisson sample may be empty: neither progress nor a stall
            self._idle_rounds = 0 if kept or skipped_all else self._idle_rounds + 1
        limit = self.cfg.server.max_idle_rounds
        if limit is not None and self._idle_rounds >= limit:
            raise RunStalled(
                f"no update was aggregated in the last {self._idle_rounds} rounds (to round {record.round}): "
                f"{record.dropped} dropped, {record.lost} lost, {record.rejected} rejected, "
                f"{record.rolled_back} rolled back, {int(record.extra.get('unaggregated', 0))} too few for "
                f"server.aggregator, {record.silent} silent in the last one. Check the deadline "
                "(wireless.policy.deadline_s), the faults section, server.aggregator, the learning rates, or "
                "raise server.max_idle_rounds (null: never stop)"
            )
        target = self.cfg.fl.target_accuracy
        reached = self.cfg.fl.stop_at_target and target is not None and record.accuracy >= target
        return keep_private and not reached

    def _account(self, record: RoundRecord, events: Sequence[UEEvent]) -> bool:
        """DP accounting of the round (fills ``record.epsilon``); False when dp.stop_at_epsilon stops."""
        counts = self._round_dp.pop(record.round, {})
        return self.privacy is None or self.privacy.end_round(record, events, counts)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume after a finished round (with the round-keyed RNG streams)."""
        return {
            "bs": self.bs.state_dict(),
            "broadcast_params": [t.clone() for t in self.broadcast_params],
            "downlink_state": self.downlink_state,
            "codec_state": _plain(self.codec_state),
            "last_uploaded": self.last_uploaded,
            "last_update": {k: (v.tensors, v.num_samples, v.buffers) for k, v in self.last_update.items()},
            "queries": [u.counted_queries for u in self.users],
            "downlink_bytes": self._downlink_bytes[self.bs.version],
            "idle_rounds": self._idle_rounds,
            "aggregated_total": self.aggregated_total,
            "last_selected": dict(self.last_selected),
            "times_selected": dict(self.times_selected),
            "pf_average": dict(self.pf_average),
            "last_payload": dict(self.last_payload),
            "privacy": self.privacy.state_dict() if self.privacy is not None else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; the next broadcast is rebuilt from the restored models."""
        self.bs.load_state_dict(state["bs"])
        self.downlink_state = state["downlink_state"]
        self.codec_state = self._codec_states()
        self.codec_state.update(state["codec_state"])
        self.last_uploaded = state["last_uploaded"]
        self.last_update = {k: ReceivedUpdate(k, t, n, b) for k, (t, n, b) in state["last_update"].items()}
        for u, q in zip(self.users, state["queries"]):
            u.counted_queries = q
        self._idle_rounds = int(state.get("idle_rounds", 0))
        self.aggregated_total = int(state.get("aggregated_total", 0))
        self.last_selected = {int(k): int(v) for k, v in state.get("last_selected", {}).items()}
        self.times_selected = {int(k): int(v) for k, v in state.get("times_selected", {}).items()}
        self.pf_average = {int(k): float(v) for k, v in state.get("pf_average", {}).items()}
        self.last_payload = {int(k): int(v) for k, v in state.get("last_payload", {}).items()}
        if self.privacy is not None:
            if state.get("privacy") is None:
                raise ValueError("the checkpoint holds no privacy ledger, but this run accounts DP")
            self.privacy.load_state_dict(state["privacy"])
        self._payloads.clear()
        self._downlink_bytes.clear()
        # Rebuild the current broadcast exactly as it was sent after the last aggregation.
        self.broadcast_params = [t.clone() for t in state["broadcast_params"]]
        payload = self.bs.payload()
        payload["parameters"] = [p.clone() for p in self.broadcast_params]
        self._payloads[self.bs.version] = payload
        self._downlink_bytes[self.bs.version] = int(state.get("downlink_bytes", 0))


def _on_cpu(shared: dict[str, Any]) -> dict[str, Any]:
    """``shared`` with its update (and buffers) copied from the training device to the CPU."""
    out = {**shared, "gradients": [g.detach().cpu() for g in shared["gradients"]]}
    if shared.get("buffers"):
        out["buffers"] = [b.detach().cpu() for b in shared["buffers"]]
    return out


def _plain(states: MutableMapping[int, CodecState]) -> dict[int, CodecState]:
    """The per-UE codec states as a dict (spilled states read from disk, without reshuffling the cache)."""
    to_dict = getattr(states, "to_dict", None)
    return to_dict() if to_dict is not None else dict(states)


def _handle(handle: object) -> int:
    if not isinstance(handle, int):
        raise RuntimeError(f"update handle {handle!r} was not made by this driver")
    return handle


class _Case:
    """A minimal ``cfg_case`` (``user`` section and seed) for ``construct_user``."""

    def __init__(self, user: Any, seed: int) -> None:
        self.user = user
        self.seed = seed
