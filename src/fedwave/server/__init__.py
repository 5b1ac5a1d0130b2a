"""The base station (server): payload, aggregation, server optimizers, evaluation."""

from fedwave.server.aggregate import aggregate_buffers, is_finite, weighted_mean
from fedwave.server.bs import AggregationOutcome, BaseStation, ReceivedUpdate
from fedwave.server.evaluate import Evaluation, evaluate
from fedwave.server.payload import build_payload

__all__ = [
    "AggregationOutcome",
    "BaseStation",
    "Evaluation",
    "ReceivedUpdate",
    "aggregate_buffers",
    "build_payload",
    "evaluate",
    "is_finite",
    "weighted_mean",
]
