"""The Flower client mod and strategy wrapper, message by message (no simulation engine).

The mod must put fedwave's own bytes in the message (same codec, same update, same random stream ->
the same payload), keep a stateful codec's state in the node's Context across rounds, and the wrapper must
decode, rebuild and let FedAvg aggregate exactly as fedwave's BS does, rejecting bad payloads by name.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("flwr")

import torch
from flwr.app import ConfigRecord, Message, RecordDict
from flwr.serverapp.strategy import FedAvg

from fedwave.codecs import get_codec, metas_of
from fedwave.config import Config
from fedwave.flower import CodecMod, CodecStrategy
from fedwave.flower.wire import ENCODES_METRIC, PAYLOAD_KEY, to_record, to_tensors
from fedwave.rng import torch_generator
from fedwave.server import BaseStation, ReceivedUpdate

from .helpers import NAMES, FakeGrid, context, global_model, train_message, trainer

SEED = 7


@pytest.fixture(autouse=True)
def _server_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """A ServerApp's identity, which Flower needs to create instruction messages outside a run."""
    from flwr.supercore.task_identity import TaskIdentity

    for name, value in (("_run_id", 1), ("_task_id", 1), ("_node_id", 1)):
        monkeypatch.setattr(TaskIdentity, name, value)


CODECS = ["fp32", "fp16", "uniform:8", "qsgd:16", "topk:0.2", "ef(topk:0.2)", "eden:2", "powersgd:2"]


def _step(seed: int, scale: float = 0.01) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [scale * torch.randn(t.shape, generator=g) for t in global_model()]


def _send(mod: CodecMod, params, step, server_round: int, node: int, ue: int, ctx=None, **config):  # type: ignore[no-untyped-def]
    msg = train_message(params, server_round, node, **config)
    ctx = ctx if ctx is not None else context(node, ue)
    return msg, mod(msg, ctx, trainer(step, samples=10 + ue))


@pytest.mark.parametrize("spec", CODECS)
def test_the_message_carries_fedwaves_bytes_for_the_update(spec: str) -> None:
    """Same codec, same update, same (seed, round, UE) stream: the bytes fedwave's UE would send."""
    params, step = global_model(), _step(1)
    _, reply = _send(CodecMod(spec, seed=SEED), params, step, server_round=3, node=11, ue=4)
    assert not reply.has_error(), reply.error.reason if reply.has_error() else ""
    assert not reply.content.array_records, "the float arrays must not travel"
    record = reply.content.config_records[PAYLOAD_KEY]
    update = [(p + s) - p for p, s in zip(params, step)]  # what the UE computes: trained - received
    codec = get_codec(spec)
    expected = codec.encode(update, rng=torch_generator(SEED, "codec", 2, 4), state={})
    assert record["payload"] == expected
    assert (record["ue"], record["round"], record["codec"]) == (4, 2, codec.spec)
    # the bytes a Flower message carries for it: the payload, and only a few bytes of labels beside it
    assert len(record["payload"]) == len(expected)
    assert record.count_bytes() - len(expected) < 100
    assert len(expected) < 4 * sum(t.numel() for t in params) + 200


def test_another_round_or_ue_draws_another_stream() -> None:
    """A stochastic codec's randomness is keyed by (round, UE): changing either changes the bytes."""
    params, step = global_model(), _step(2)
    mod = CodecMod("uniform:4", seed=SEED)
    payloads = {
        (r, ue): _send(mod, params, step, r, 1, ue)[1].content.config_records[PAYLOAD_KEY]["payload"]
        for r, ue in [(1, 0), (2, 0), (1, 1)]
    }
    assert len(set(payloads.values())) == 3


def test_error_feedback_state_lives_in_the_context_across_rounds() -> None:
    """ef(topk): round 2's payload is fedwave's with the residual of round 1, kept in Context.state."""
    params, steps = global_model(), [_step(3), _step(4)]
    codec = get_codec("ef(topk:0.1)")
    mod = CodecMod(seed=SEED)
    ctx = context(5, 2)
    state: dict = {}
    for server_round, step in enumerate(steps, start=1):
        _, reply = _send(mod, params, step, server_round, 5, 2, ctx, **{"fedwave-codec": codec.spec})
        update = [(p + s) - p for p, s in zip(params, step)]
        expected = codec.encode(update, rng=torch_generator(SEED, "codec", server_round - 1, 2), state=state)
        assert reply.content.config_records[PAYLOAD_KEY]["payload"] == expected
        assert reply.content.metric_records["metrics"][ENCODES_METRIC] == server_round
    fresh = codec.encode(
        [(p + s) - p for p, s in zip(params, steps[1])], rng=torch_generator(SEED, "codec", 1, 2), state={}
    )
    assert fresh != expected, "without the residual of round 1 round 2 would send other bytes"
    assert sum(float(v.abs().sum()) for k, v in state.items() if k.startswith("residual")) > 0


def test_the_mod_refuses_what_it_cannot_encode_with_a_clear_error() -> None:
    params, step = global_model(), _step(5)
    cases = {
        "no codec": (CodecMod(), {}, 0, "no codec"),
        "codec mismatch": (CodecMod("fp16"), {"fedwave-codec": "uniform:8"}, 0, "asks for codec"),
        "no partition-id": (CodecMod("fp32"), {}, None, "partition-id"),
    }
    for name, (mod, config, ue, words) in cases.items():
        msg = train_message(params, 1, 3, **config)
        reply = mod(msg, context(3, ue), trainer(step, samples=10))
        assert reply.has_error(), name
        assert words in reply.error.reason and "CodecMod" in reply.error.reason, reply.error.reason
    msg = Message(RecordDict({"arrays": to_record(NAMES, params), "config": ConfigRecord()}), 3, "train")
    reply = CodecMod("fp32")(msg, context(3, 0), trainer(step, 10))
    assert reply.has_error() and "server-round" in reply.error.reason


def test_non_train_messages_pass_through() -> None:
    params = global_model()
    msg = Message(RecordDict({"arrays": to_record(NAMES, params)}), 3, "evaluate")
    seen = []
    reply = CodecMod("uniform:8")(msg, context(3, 0), lambda m, c: seen.append(m) or m)
    assert seen == [msg] and reply is msg


def _round(strategy: CodecStrategy, params, replies_of, server_round: int = 1):  # type: ignore[no-untyped-def]
    """configure_train then aggregate_train of ``strategy`` over the replies ``replies_of(messages)``."""
    grid = FakeGrid([11, 12, 13])
    msgs = list(strategy.configure_train(server_round, to_record(NAMES, params), ConfigRecord(), grid))
    return strategy.aggregate_train(server_round, replies_of(msgs))


def _fedavg() -> FedAvg:
    return FedAvg(fraction_evaluate=0.0, min_train_nodes=3, min_available_nodes=3)


@pytest.mark.parametrize("spec", ["fp32", "uniform:8"])
def test_fedavg_through_the_wrapper_equals_fedwaves_bs(spec: str) -> None:
    """Weighted by num-examples (the UE's samples), the new global model is the one fedwave's BS computes
    from the same decoded updates, bit for bit."""
    params = global_model()
    steps = {11: _step(6, 0.05), 12: _step(7, 0.01), 13: _step(8, 0.02)}
    ues = {11: 0, 12: 1, 13: 2}
    mod = CodecMod(seed=SEED)
    strategy = CodecStrategy(_fedavg(), spec)

    def replies(msgs):  # type: ignore[no-untyped-def]
        out = []
        for m in msgs:
            node = m.metadata.dst_node_id
            out.append(
                mod(m, context(node, ues[node]), trainer(steps[node], samples=[30, 10, 60][ues[node]]))
            )
        return out

    arrays, _ = _round(strategy, params, replies)
    assert arrays is not None
    codec = get_codec(spec)
    received = []
    for node, ue in ues.items():
        update = [(p + s) - p for p, s in zip(params, steps[node])]
        payload = codec.encode(update, rng=torch_generator(SEED, "codec", 0, ue), state={})
        received.append(
            ReceivedUpdate(ue, codec.decode(payload, expected=metas_of(params)), [30, 10, 60][ue])
        )
    model = torch.nn.ParameterList([torch.nn.Parameter(p.clone()) for p in params])
    bs = BaseStation(
        model,
        Config().server,
        algorithm="fedavg",
        weighting="samples",
        x_test=torch.zeros(1),
        y_test=torch.zeros(1),
    )
    bs.aggregate(received)
    for got, want in zip(to_tensors(arrays), bs.parameters_snapshot()):
        assert got.dtype == torch.float32
        assert torch.equal(got, want)
    uniform = [p + sum(u.tensors[i] for u in received) / 3 for i, p in enumerate(params)]
    assert max(float((a - b).abs().max()) for a, b in zip(to_tensors(arrays), uniform)) > 1e-4
    assert sorted(strategy.log[0].payload_bytes) == [0, 1, 2]


def _tamper(kind: str, record: ConfigRecord) -> None:
    payload = bytes(record["payload"])  # type: ignore[arg-type]
    if kind == "truncated":
        record["payload"] = payload[: len(payload) // 2]
    elif kind == "flipped byte":
        record["payload"] = payload[:40] + bytes([payload[40] ^ 0x55]) + payload[41:]
    elif kind == "other layout":
        record["payload"] = get_codec("fp32").encode([torch.zeros(7)], rng=torch_generator(0))
    elif kind == "other codec":
        record["codec"] = "fp16"
    elif kind == "empty":
        record["payload"] = b""


@pytest.mark.parametrize(
    "kind", ["truncated", "flipped byte", "other layout", "other codec", "empty", "no mod"]
)
def test_a_malformed_payload_is_rejected_by_name_and_the_round_goes_on(kind: str) -> None:
    params = global_model()
    steps = {11: _step(9), 12: _step(10), 13: _step(11)}
    mod = CodecMod(seed=SEED)
    strategy = CodecStrategy(_fedavg(), "fp32")

    def replies(msgs):  # type: ignore[no-untyped-def]
        out = []
        for m in msgs:
            node = m.metadata.dst_node_id
            if node == 12 and kind == "no mod":
                out.append(trainer(steps[node], 10)(m, context(node, 1)))
                continue
            reply = mod(m, context(node, node - 11), trainer(steps[node], 10))
            if node == 12:
                _tamper(kind, reply.content.config_records[PAYLOAD_KEY])
            out.append(reply)
        return out

    arrays, _ = _round(strategy, params, replies)
    log = strategy.log[0]
    assert [r.node_id for r in log.rejected] == [12]
    assert log.rejected[0].reason, "a rejection says why"
    assert sorted(log.payload_bytes) == [0, 2]
    assert arrays is not None
    want = [p + (s11 + s13) / 2 for p, s11, s13 in zip(params, steps[11], steps[13])]
    assert max(float((a - b).abs().max()) for a, b in zip(to_tensors(arrays), want)) < 1e-6


def test_a_round_of_only_bad_payloads_leaves_no_model_and_raises_nothing() -> None:
    params = global_model()
    strategy = CodecStrategy(_fedavg(), "fp32")

    def replies(msgs):  # type: ignore[no-untyped-def]
        out = []
        for m in msgs:
            reply = CodecMod(seed=SEED)(m, context(1, 0), trainer(_step(1), 10))
            reply.content.config_records[PAYLOAD_KEY]["payload"] = b"\x00" * 12
            out.append(reply)
        return out

    arrays, _ = _round(strategy, params, replies)
    assert arrays is None
    assert len(strategy.log[0].rejected) == 3


def test_without_flwr_fedwave_flower_says_how_to_install_it() -> None:
    code = (
        "import sys; sys.modules['flwr'] = None\n"
        "try:\n    import fedwave.flower\nexcept Exception as e:\n"
        "    print(type(e).__name__, '|', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("FlowerUnavailable |") and "pip install 'fedwave[flower]'" in out


def test_the_rest_of_fedwave_never_imports_flwr() -> None:
    code = (
        "import importlib, pathlib, sys, fedwave\n"
        "root = pathlib.Path(fedwave.__path__[0])\n"
        "parts = [('fedwave', *p.relative_to(root).with_suffix('').parts) for p in root.rglob('*.py')]\n"
        "names = sorted('.'.join(q) for q in parts)\n"
        "names = [n.removesuffix('.__init__') for n in names if not n.startswith('fedwave.flower')]\n"
        "assert len(names) > 100, names\n"
        "for n in names:\n"
        "    importlib.import_module(n)\n"
        "print(sorted({k.split('.')[0] for k in sys.modules if k.split('.')[0] in ('flwr', 'ray')}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
