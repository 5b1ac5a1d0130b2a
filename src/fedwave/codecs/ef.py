"""``ef(<codec>)``: error feedback around a codec that is a contraction.

The UE adds its residual ``e`` to the update before encoding and keeps what the receiver did not get:
``u = x + e``, ``payload = C.encode(u)``, ``e <- u - inner.decode(payload)``, with ``C =
inner.contraction()`` (same payload format, decoded by the inner codec). Summed over rounds, the decoded
updates then differ from the true ones by exactly the current residual, so nothing is lost for good
(Seide et al., 2014; Karimireddy et al., 2019).

Why ``C`` must be a contraction, ``E||C(u) - u||^2 <= (1 - delta) ||u||^2`` with ``delta > 0``: the new
residual is ``u - C(u)``, so with Young's inequality ``||a + b||^2 <= (1 + eta) ||a||^2 + (1 + 1/eta)
||b||^2`` at ``eta = delta / (2 (1 - delta))``,
``E||e_{t+1}||^2 <= (1 - delta/2) E||e_t||^2 + (2 (1 - delta) / delta) ||x_t||^2``, and by induction from
``e_0 = 0``, ``E||e_t||^2 <= 4 (1 - delta) / delta^2 * max_s ||x_s||^2`` for every ``t`` (Stich and
Karimireddy, 2019). A codec with ``E||C(u) - u||^2 > ||u||^2`` makes the residual grow geometrically:
unbiased ``randk:0.1`` (``E||C(u) - u||^2 = 9 ||u||^2``) gave ``||e|| / ||x||`` of 1.9e9 after 40 rounds.
So each codec says what error feedback sends (``fedwave codecs`` lists it, the codec docstrings derive
``delta``): biased codecs that are contractions as they are (``topk``, ``sign``, the casts,
``powersgd``) unchanged; unbiased codecs with variance ``omega ||u||^2`` scaled by ``1 / (1 + omega)``
(``uniform``, ``qsgd``, ``terngrad``, ``randk``); the rotation codecs with their MSE-optimal scale.

``ef(ef(...))`` is refused: the outer residual would compensate the errors the inner one already
compensates, so every error is fed back twice.

A faulty update: when ``u`` (or its decoded value, e.g. an fp16 overflow) is not finite, the payload
carries it as it is (the receiver rejects it) and the residual restarts at zero; non-finite entries of
the inner codec's state are dropped. One bad round never poisons the later ones.

The payload is the inner codec's format (for a contractive inner codec, the very bytes it would send);
``decode`` is the inner decode. State keys: ``"residual.<tensor index>"`` (float32 tensors) and the
inner codec's own keys prefixed with ``"inner."``. Without a state (``state=None``) the residual starts
at zero and is not kept.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from fedwave.codecs.base import Codec, CodecState
from fedwave.codecs.header import TensorMeta, metas_of
from fedwave.errors import ConfigError

_INNER = "inner."
_RESIDUAL = "residual."


def _nested(spec: str) -> ConfigError:
    return ConfigError(
        f"error feedback cannot be nested: ef({spec}) would feed every compression error back twice "
        f"(two residuals for one message); wrap the codec once, e.g. {spec}"
    )


def _finite(value: object) -> bool:
    return not isinstance(value, torch.Tensor) or bool(torch.isfinite(value).all())


class ErrorFeedback(Codec):
    """Error feedback wrapper: the residual lives in the caller's per-UE state."""

    stateful = True
    under_ef = "refused (error feedback is not nested)"

    def __init__(self, inner: Codec) -> None:
        if isinstance(inner, ErrorFeedback):
            raise _nested(inner.spec)
        self.inner = inner
        self.sender = inner.contraction()
        self.spec = f"ef({inner.spec})"
        self.exact = inner.exact
        self.unbiased = False

    def contraction(self) -> Codec:
        """Refused: error feedback is not nested."""
        raise _nested(self.spec)

    def encode(
        self,
        tensors: Sequence[torch.Tensor],
        *,
        rng: torch.Generator,
        state: CodecState | None = None,
    ) -> bytes:
        """Encode ``tensors`` plus the residual with the inner codec's contraction; update ``state``."""
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
                e = state.get(f"{_RESIDUAL}{i}")
                if isinstance(e, torch.Tensor) and e.shape == x.shape:
                    x = x + e
                targets.append(x)
                sent.append(x.to(t.dtype))  # the payload keeps the input dtype
            inner_state = {k[len(_INNER) :]: v for k, v in state.items() if k.startswith(_INNER)}
            payload = self.sender.encode(sent, rng=rng, state=inner_state)
            decoded = self.inner.decode(payload, expected=metas_of(sent))
            residuals = [(u - got.to(torch.float32)).contiguous() for u, got in zip(targets, decoded)]
            for key in [k for k in state if k.startswith((_INNER, _RESIDUAL))]:
                del state[key]
            state.update({_INNER + k: v for k, v in inner_state.items() if _finite(v)})
            if all(_finite(t) for t in targets) and all(_finite(r) for r in residuals):
                state.update({f"{_RESIDUAL}{i}": r for i, r in enumerate(residuals)})
        return payload

    def decode(self, payload: bytes, *, expected: Sequence[TensorMeta] | None = None) -> list[torch.Tensor]:
        """The inner codec's decode (the wrapper does not change the payload format)."""
        return self.inner.decode(payload, expected=expected)
