"""Messages as Flower's ServerApp and ClientApp exchange them, built by hand for the unit tests."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict

from fedwave.flower.wire import to_record, to_tensors

NAMES = ["w1", "b1", "w2"]


def global_model(seed: int = 0) -> list[torch.Tensor]:
    """A small model: three float32 tensors."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(6, 5, generator=g), torch.randn(6, generator=g), torch.randn(3, 6, generator=g)]


def train_message(params: Sequence[torch.Tensor], server_round: int, node: int, **config: object) -> Message:
    """The train instruction a FedAvg ServerApp sends to ``node``."""
    cfg = ConfigRecord({"server-round": server_round, **config})  # type: ignore[dict-item]
    content = RecordDict({"arrays": to_record(NAMES, list(params)), "config": cfg})
    return Message(content, dst_node_id=node, message_type="train")


def context(node: int, ue: int | None) -> Context:
    """A node's context in the simulation engine (``partition-id`` = UE)."""
    node_config = {} if ue is None else {"partition-id": ue}
    return Context(run_id=1, node_id=node, node_config=node_config, state=RecordDict(), run_config={})


def trainer(step: Sequence[torch.Tensor], samples: int):  # type: ignore[no-untyped-def]
    """A ClientApp train function that moves the received model by ``step`` and reports ``samples``."""

    def train(msg: Message, ctx: Context) -> Message:
        received = to_tensors(msg.content.array_records["arrays"])
        trained = [r + s for r, s in zip(received, step)]
        content = RecordDict(
            {"arrays": to_record(NAMES, trained), "metrics": MetricRecord({"num-examples": samples})}
        )
        return Message(content, reply_to=msg)

    return train


def arrays_of(record: ArrayRecord) -> list[torch.Tensor]:
    return to_tensors(record)


class FakeGrid:
    """The part of a Grid that FedAvg.configure_train uses: the connected node ids."""

    def __init__(self, nodes: Sequence[int]) -> None:
        self.nodes = list(nodes)

    def get_node_ids(self) -> list[int]:
        return self.nodes
