"""Stateful codecs: error feedback keeps what was not sent; PowerSGD's warm start refines the subspace."""

from __future__ import annotations

import io

import pytest
import torch

from fedwave.codecs import CodecState, get_codec


def _flat(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors]).double()


def test_error_feedback_sum_tracks_inputs() -> None:
    """sum_t x_t - sum_t decoded_t equals the current residual, which stays bounded, while plain top-k
    loses a constant part of every update for good."""
    g = torch.Generator().manual_seed(0)
    drift = [torch.randn(20, 20, generator=g), torch.randn(50, generator=g)]
    ef, plain = get_codec("ef(topk:0.05)"), get_codec("topk:0.05")
    state: CodecState = {}
    sum_x = sum_ef = sum_plain = torch.zeros(450, dtype=torch.float64)
    residual_norms = []
    steps = 300
    for _ in range(steps):
        x = [d + 0.5 * torch.randn(d.shape, generator=g) for d in drift]
        sum_x = sum_x + _flat(x)
        sum_ef = sum_ef + _flat(ef.decode(ef.encode(x, rng=g, state=state)))
        sum_plain = sum_plain + _flat(plain.decode(plain.encode(x, rng=g)))
        residual = _flat([state["residual.0"], state["residual.1"]])
        assert torch.allclose(sum_x - sum_ef, residual, atol=1e-3 * float(sum_x.norm()) / steps + 1e-3)
        residual_norms.append(float(residual.norm()))
    third = steps // 3
    assert max(residual_norms[-third:]) <= 1.5 * max(residual_norms[third : 2 * third])
    assert float((sum_x - sum_ef).norm()) < 0.05 * float((sum_x - sum_plain).norm())


def test_error_feedback_payload_is_the_inner_payload() -> None:
    x = [torch.randn(30, generator=torch.Generator().manual_seed(1))]
    ef, inner = get_codec("ef(sign)"), get_codec("sign")
    assert ef.encode(x, rng=torch.Generator(), state={}) == inner.encode(x, rng=torch.Generator())
    assert ef.encode(x, rng=torch.Generator()) == inner.encode(x, rng=torch.Generator())  # no state
    assert ef.stateful and not ef.unbiased


def test_error_feedback_keeps_low_precision_dtypes() -> None:
    x = [torch.randn(40, generator=torch.Generator().manual_seed(2)).to(torch.float16)]
    codec = get_codec("ef(uniform:2)")
    state: CodecState = {}
    for _ in range(3):
        out = codec.decode(codec.encode(x, rng=torch.Generator().manual_seed(0), state=state))
        assert out[0].dtype == torch.float16
    assert state["residual.0"].dtype == torch.float32


def _low_rank_matrix(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(40, 6, generator=g))
    v, _ = torch.linalg.qr(torch.randn(30, 6, generator=g))
    return u @ torch.diag(torch.tensor([10.0, 6.0, 3.0, 1.0, 0.5, 0.2])) @ v.T


def test_powersgd_warm_start_converges_to_the_best_rank_r() -> None:
    m = _low_rank_matrix(0)
    codec = get_codec("powersgd:2")
    state: CodecState = {}
    rng = torch.Generator().manual_seed(1)
    errors, payloads = [], []
    for _ in range(15):
        payloads.append(codec.encode([m], rng=rng, state=state))
        errors.append(float((codec.decode(payloads[-1])[0] - m).norm()))
    assert payloads[0] != payloads[1]  # the warm start changes the output
    s = torch.linalg.svdvals(m)
    best = float(s[2:].norm())  # Eckart-Young: the best rank-2 error
    assert errors[-1] == pytest.approx(best, rel=1e-3)
    assert errors[-1] < errors[0]


def test_powersgd_is_reproducible_and_checkpointable() -> None:
    update = [_low_rank_matrix(1), torch.randn(7), torch.randn(4, 3, 5)]
    codec = get_codec("powersgd:2")

    def run(steps: int, state: CodecState, rng: torch.Generator) -> list[bytes]:
        return [codec.encode(update, rng=rng, state=state) for _ in range(steps)]

    first = run(4, {}, torch.Generator().manual_seed(3))
    state: CodecState = {}
    rng = torch.Generator().manual_seed(3)
    head = run(2, state, rng)
    assert all(isinstance(v, torch.Tensor | int | float) for v in state.values())
    buffer = io.BytesIO()
    torch.save({"state": state, "rng": rng.get_state()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    restored = torch.Generator()
    restored.set_state(saved["rng"])
    assert head + run(2, saved["state"], restored) == first
    out = codec.decode(first[0])
    assert torch.equal(out[1], update[1])  # vectors are sent as they are


def test_powersgd_zero_update_does_not_stall_the_warm_start() -> None:
    m = _low_rank_matrix(2)
    codec = get_codec("powersgd:2")
    state: CodecState = {}
    rng = torch.Generator().manual_seed(0)
    codec.encode([m], rng=rng, state=state)
    zero = codec.decode(codec.encode([torch.zeros_like(m)], rng=rng, state=state))[0]
    assert torch.equal(zero, torch.zeros_like(m))
    assert bool(state["q.0"].any())  # an all-zero Q would make every later output zero
    again = codec.decode(codec.encode([m], rng=rng, state=state))[0]
    assert float((again - m).norm()) < 0.5 * float(m.norm())


def test_stateful_flags() -> None:
    assert get_codec("powersgd:1").stateful
    assert get_codec("ef(fp16)").stateful
    assert not get_codec("qsgd:4").stateful


def test_powersgd_warm_start_orthogonal_to_the_update_restarts() -> None:
    """A warm start orthogonal to the new update (M2 Q = 0) would send nothing: the encoder restarts from
    M2's largest columns, so the error stays within (1 - q/m) ||M2||^2 (here M2 has rank 1: exact)."""
    g = torch.Generator().manual_seed(5)
    u1, u2 = torch.randn(40, 1, generator=g), torch.randn(40, 1, generator=g)
    v1, v2 = torch.zeros(1, 30), torch.zeros(1, 30)
    v1[0, 0], v2[0, 1] = 1.0, 2.0
    codec = get_codec("powersgd:1")
    state: CodecState = {}
    rng = torch.Generator().manual_seed(6)
    codec.encode([u1 @ v1], rng=rng, state=state)
    m2 = u2 @ v2
    assert float((m2 @ state["q.0"]).norm()) == 0.0  # the warm start is orthogonal to M2
    out = codec.decode(codec.encode([m2], rng=rng, state=state))[0]
    assert float((out - m2).norm()) <= 1e-5 * float(m2.norm())
