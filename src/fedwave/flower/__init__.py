"""fedwave codecs in a Flower 1.41 app (optional extra: ``pip install 'fedwave[flower]'``).

- :class:`~fedwave.flower.mod.CodecMod`: a client mod that replaces the model a ClientApp returns from
  training by the bytes of ``codec.encode(trained - received)``, so the message carries a real fedwave
  payload; a stateful codec's per-UE state (error-feedback residual) lives in the node's ``Context.state``.
- :class:`~fedwave.flower.strategy.CodecStrategy`: wraps a Flower strategy (e.g. ``FedAvg``); it decodes
  each reply against the layout of the global model it sent, rebuilds the client's model (global +
  update) and lets the wrapped strategy aggregate unchanged. A malformed payload becomes an error reply,
  named in the round's log, never a traceback.
- :mod:`fedwave.flower.apps`: a ClientApp and a ServerApp that train fedwave's UEs (users layer, data
  split, model) in Flower's simulation engine, used by ``examples/flower_app`` and the equivalence tests.

Importing this package needs ``flwr``; the rest of fedwave never imports it.
"""

from __future__ import annotations

from fedwave.errors import FedwaveError


class FlowerUnavailable(FedwaveError):
    """Flower (``flwr``) is not installed; ``fedwave.flower`` needs it."""


try:
    import flwr  # noqa: F401
except ImportError:
    raise FlowerUnavailable(
        "fedwave.flower needs Flower 1.41: install the extra with "
        "pip install 'fedwave[flower]' (that is flwr[simulation]==1.41.0)"
    ) from None

from fedwave.flower.mod import CodecMod  # noqa: E402
from fedwave.flower.strategy import CodecStrategy, Rejection, RoundLog  # noqa: E402

__all__ = ["CodecMod", "CodecStrategy", "FlowerUnavailable", "Rejection", "RoundLog"]
