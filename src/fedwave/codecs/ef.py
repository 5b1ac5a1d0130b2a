"""``ef(<codec>)``: error feedback around any codec.

The UE adds its residual ``e`` to the update before encoding and keeps what the receiver did not get:
``u = x + e``, ``payload = inner.encode(u)``, ``e <- u - inner.decode(payload)``. Summed over rounds,
the decoded updates then differ from the true ones by exactly the current residual, so nothing is lost
for good (Seide et al., 2014; Karimireddy et al., 2019).

The payload is the inner codec's, unchanged (same bytes, same size); ``decode`` is the inner decode.
State keys: ``"residual.<tensor index>"`` (float32 tensors) and the inner codec's own keys prefixed with
``"inner."``. Without a state (``state=None``) the residual starts at zero and is not kept.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from fedwave.codecs.base import Codec, CodecState

_INNER = "inner."


class ErrorFeedback(Codec):
    """Error feedback wrapper: the residual lives in the caller's per-UE state."""

    stateful = True

    def __init__(self, inner: Codec) -> None:
        self.inner = inner
        self.spec = f"ef({inner.spec})"
        self.exact = inner.exact
        self.unbiased = False

    def encode(
        self,
        tensors: Sequence[torch.Tensor],
        *,
        rng: torch.Generator,
        state: CodecState | None = None,
    ) -> bytes:
        """Encode ``tensors`` plus the residual with the inner codec and update the residual in ``state``."""
        if isinstance(tensors, torch.Tensor):
            raise TypeError("codecs encode a sequence of tensors; wrap a single tensor in a list")
        if state is None:
            state = {}
        with torch.no_grad():
            targets, sent = [], []
            for i, t in enumerate(tensors):
                if not isinstance(t, torch.Tensor):
                    raise TypeError(f"codecs encode torch tensors, got {type(t).__name__}")
                x = t.detach().to(device="cpu", dtype=torch.float32)
                e = state.get(f"residual.{i}")
                if isinstance(e, torch.Tensor) and e.shape == x.shape:
                    x = x + e
                targets.append(x)
                sent.append(x.to(t.dtype))  # the payload keeps the input dtype
            inner_state = {k[len(_INNER) :]: v for k, v in state.items() if k.startswith(_INNER)}
            payload = self.inner.encode(sent, rng=rng, state=inner_state)
            decoded = self.inner.decode(payload)
            for key in [k for k in state if k.startswith(_INNER)]:
                del state[key]
            state.update({_INNER + k: v for k, v in inner_state.items()})
            for key in [k for k in state if k.startswith("residual.")]:
                del state[key]
            for i, (target, got) in enumerate(zip(targets, decoded, strict=True)):
                state[f"residual.{i}"] = (target - got.to(torch.float32)).contiguous()
        return payload

    def decode(self, payload: bytes) -> list[torch.Tensor]:
        """The inner codec's decode (the wrapper does not change the payload)."""
        return self.inner.decode(payload)
