"""Counter-based link streams: their statistics, their keys, and many links at once = one link at a time.

Tolerances are 4 standard deviations of the estimate (from the variance of the distribution and n).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedwave.channel.blocks import BlockLink, counter_source, outage_airtimes, uplink_block_airtimes
from fedwave.channel.fading import counter_fading_power
from fedwave.channel.link import counter_attempts
from fedwave.counter_rng import column_keys, stream_key, stream_keys, uniforms

N = 400_000


def test_uniforms_are_uniform_and_independent_across_indices_and_links() -> None:
    keys = column_keys(3, ("t",), 0, np.arange(400))
    u = uniforms(keys[:, None], np.arange(1000)[None, :])
    assert u.shape == (400, 1000) and u.min() >= 0.0 and u.max() < 1.0
    n = u.size
    assert abs(u.mean() - 0.5) < 4 * math.sqrt(1 / 12 / n)
    assert abs((u**2).mean() - 1 / 3) < 4 * math.sqrt((1 / 5 - 1 / 9) / n)
    hist = np.histogram(u, bins=10, range=(0, 1))[0] / n
    assert np.all(np.abs(hist - 0.1) < 4 * math.sqrt(0.1 * 0.9 / n))
    z = (u - 0.5) * math.sqrt(12)
    along = (z[:, 1:] * z[:, :-1]).mean()  # index j vs j+1 of one link
    across = (z[1:, :] * z[:-1, :]).mean()  # UE u vs u+1 in one round
    assert abs(along) < 4 / math.sqrt(z[:, 1:].size) and abs(across) < 4 / math.sqrt(z[1:].size)


@pytest.mark.parametrize("model,k", [("rayleigh", 0.0), ("rician", 0.5), ("rician", 6.0)])
def test_fading_powers_have_mean_one_and_the_model_variance(model: str, k: float) -> None:
    x = counter_fading_power(stream_key(1, "f", 2), np.arange(N), model, k)
    var = 1.0 if model == "rayleigh" else (1 + 2 * k) / (1 + k) ** 2
    assert abs(x.mean() - 1.0) < 4 * math.sqrt(var / N)
    # the variance estimate's own sd needs the 4th moment: E[x^4]-var^2 <= 24 for these models
    assert abs(x.var() - var) < 4 * math.sqrt(24 / N)
    assert np.all(x >= 0)
    assert np.all(counter_fading_power(stream_key(1, "f", 2), np.arange(5), "none", 0.0) == 1.0)


def test_block_values_do_not_depend_on_which_blocks_are_asked_for() -> None:
    key = stream_key(9, "fading", "up", 4, 17)
    whole = counter_fading_power(key, np.arange(100), "rician", 3.0)
    assert np.array_equal(counter_fading_power(key, np.arange(40, 60), "rician", 3.0), whole[40:60])
    assert counter_fading_power(key, 77, "rician", 3.0)[0] == whole[77]


def test_stream_keys_name_their_streams() -> None:
    rows = [(r, u) for r in range(3) for u in range(50)]
    keys = stream_keys(5, ("fading", "up"), rows)
    assert keys.tolist() == [stream_key(5, "fading", "up", r, u) for r, u in rows]
    assert len(set(keys.tolist())) == len(rows)
    assert stream_key(5, "fading", "up", 1, 2) != stream_key(5, "fading", "down", 1, 2)
    assert stream_key(5, "fading", "up", 1, 2) != stream_key(6, "fading", "up", 1, 2)
    assert stream_key(5, "fading", "up", 1, 2) != stream_key(5, "fading", "up", 2, 1)
    mixed = stream_keys(5, ("fading", "up"), [("async", 3, 0), ("async", 3, 1)])
    assert mixed.tolist() == [stream_key(5, "fading", "up", "async", 3, n) for n in (0, 1)]
    assert np.array_equal(column_keys(5, ("fading", "up"), 2, np.arange(4)), keys[100:104])


@pytest.mark.parametrize("q", [0.0, 0.3, 0.8, 1.0])
def test_counter_attempts_are_geometric_and_capped(q: float) -> None:
    keys = column_keys(2, ("errors",), 0, np.arange(N))
    attempts, delivered = counter_attempts(keys, np.full(N, q), 3)
    if q == 0.0:
        assert np.all(attempts == 1) and np.all(delivered)
        return
    if q == 1.0:
        assert np.all(attempts == 4) and not np.any(delivered)
        return
    for a in (1, 2, 3, 4):
        p = q ** (a - 1) * (1 - q)
        got = np.mean((attempts == a) & delivered)
        assert abs(got - p) < 4 * math.sqrt(p * (1 - p) / N), a
    p_lost = q**4
    assert abs(np.mean(~delivered) - p_lost) < 4 * math.sqrt(p_lost * (1 - p_lost) / N)
    assert np.all(attempts[~delivered] == 4)


@pytest.mark.parametrize("model", ["rayleigh", "rician", "none"])
@pytest.mark.parametrize("max_elements", [1 << 22, 1 << 18, 64])
def test_many_block_links_at_once_equal_one_block_link_at_a_time(model: str, max_elements: int) -> None:
    rng = np.random.default_rng(0)
    n = 30
    keys = column_keys(4, ("fading", "up"), 7, np.arange(n))
    snr = 10 ** rng.uniform(-1.5, 3, n)
    band = rng.uniform(1e4, 2e6, n)
    bits = rng.uniform(10, 4e5, n).round()
    attempts = rng.integers(1, 5, n)
    block_s = 0.003
    got = uplink_block_airtimes(
        keys,
        snr,
        band,
        bits,
        attempts,
        gap_db=1.5,
        block_s=block_s,
        fading=model,
        rician_k=2.0,
        max_elements=max_elements,
    )
    spans = 0
    for i in range(n):
        link = BlockLink(
            [snr[i]],
            band[i],
            1.5,
            block_s,
            model,
            2.0,
            None,
            source=counter_source(keys[i : i + 1], model, 2.0),
        )
        want = [link.send(bits[i]) for _ in range(attempts[i])]
        assert got[i, : attempts[i]].tolist() == want, i  # bit for bit
        assert np.all(got[i, attempts[i] :] == 0.0)
        spans += link.blocks_drawn > 1
    assert spans > n // 2  # most messages span several blocks (the chunked path is exercised)


def test_outage_rule_for_many_links() -> None:
    # link 0 fails twice then passes; link 1 never reaches the threshold; link 2 passes at once
    x = np.array([[0.1, 0.2, 3.0], [0.0, 0.1, 0.2], [5.0, 0.0, 0.0]])
    snr = np.array([10.0, 10.0, 10.0])
    band = np.array([1e6, 2e6, 1e6])
    bits = np.array([8000.0, 8000.0, 4000.0])
    seconds, attempts, delivered = outage_airtimes(x, snr, band, bits, gap_db=0.0, outage_snr=10.0)
    floor = band * math.log2(1 + 10.0)
    assert attempts.tolist() == [3, 3, 1] and delivered.tolist() == [True, False, True]
    assert seconds[0].tolist() == pytest.approx(
        [8000 / floor[0], 8000 / floor[0], 8000 / (1e6 * math.log2(31))]
    )
    assert seconds[1].tolist() == pytest.approx([8000 / floor[1]] * 3)
    assert seconds[2].tolist() == pytest.approx([4000 / (1e6 * math.log2(51)), 0.0, 0.0])
