"""Counter-based link streams: their statistics, their keys, and many links at once = one link at a time.

Tolerances are 4 standard deviations of the estimate (from the variance of the distribution and n).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedwave.channel.blocks import (
    GROUP,
    BlockLink,
    counter_source,
    group_capacities,
    outage_airtimes,
    running_sums,
    uplink_block_airtimes,
    within_group,
)
from fedwave.channel.fading import counter_fading_power, counter_fading_run, log_complements
from fedwave.channel.link import counter_attempts, shannon_rate_bps
from fedwave.counter_rng import (
    column_keys,
    halves,
    halves_by_arithmetic,
    stream_key,
    stream_keys,
    uniforms,
    word_halves,
    words,
)

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


def test_word_halves_are_the_low_and_high_32_bits_of_the_words() -> None:
    rng = np.random.default_rng(5)
    keys = rng.integers(0, 2**63, 50, dtype=np.int64).view(np.uint64)
    first = rng.integers(0, 2**40, 50)
    first[0] = 0
    got = word_halves(keys, first, 37)
    assert got.shape == (37, 50, 2) and got.dtype == np.uint32
    z = words(keys[None, :], first[None, :] + np.arange(37)[:, None])
    assert np.array_equal(got[..., 0], (z & np.uint64(0xFFFFFFFF)).astype(np.uint32))
    assert np.array_equal(got[..., 1], (z >> np.uint64(32)).astype(np.uint32))
    # the top 53 bits of a word are uniforms()'s
    assert np.array_equal(
        (z >> np.uint64(11)).astype(np.float64) * 2.0**-53,
        uniforms(keys[None, :], first[None, :] + np.arange(37)[:, None]),
    )
    with pytest.raises(ValueError, match=">= 0"):
        word_halves(keys[:1], np.array([-1]), 3)


def test_halves_by_arithmetic_equal_the_little_endian_view() -> None:
    z = np.array([0x0123456789ABCDEF, 2**64 - 1, 0, 2**32], dtype=np.uint64)
    want = [[0x89ABCDEF, 0x01234567], [2**32 - 1, 2**32 - 1], [0, 0], [0, 1]]
    assert halves(z).tolist() == want and halves_by_arithmetic(z).tolist() == want
    z2 = np.random.default_rng(0).integers(0, 2**63, (7, 5), dtype=np.int64).view(np.uint64)
    assert np.array_equal(halves(z2), halves_by_arithmetic(z2)) and halves(z2).shape == (7, 5, 2)


def test_log_complements_are_the_logarithm_of_one_minus_the_top_23_bits() -> None:
    h = np.array([0, 1 << 9, 0xFFFFFFFF, 0x80000000, 0x12345678], dtype=np.uint32)
    got = log_complements(h.copy())
    u = (h.astype(np.int64) >> 9) / 2.0**23
    exact = np.log(1.0 - u)
    assert got.dtype == np.float32 and got[0] == 0.0  # u = 0: a block that carries nothing
    assert abs(float(got[2]) + 23 * math.log(2)) < 1e-5  # the largest power, 23 ln 2 = 15.94
    # NumPy's float32 log: at most 3.8 float32 ulps over all 2^23 inputs (2.3 x 2^-23 relative)
    assert np.all(np.abs(got - exact) <= 4 * 2.0**-23 * np.abs(exact))


@pytest.mark.parametrize("model", ["rayleigh", "rician", "none"])
@pytest.mark.parametrize("offset,count", [(8, 24), (7, 24), (8, 23)])
def test_a_run_of_blocks_equals_the_blocks_asked_one_by_one(model: str, offset: int, count: int) -> None:
    # even first blocks and counts take Rayleigh's fast path (whole words), the others the general one
    keys = column_keys(8, ("fading", "up"), 3, np.arange(20))
    first = np.arange(20) * 1000 + offset
    got = counter_fading_run(keys, first, count, model, 2.0)
    assert got.shape == (count, 20)
    for r in range(20):
        one = counter_fading_power(keys[r], first[r] + np.arange(count), model, 2.0)
        assert np.array_equal(got[:, r], one), r


def test_rayleigh_powers_are_minus_log_of_one_minus_u_from_the_halves_of_the_words() -> None:
    keys = column_keys(2, ("x",), np.arange(5))
    j = np.arange(300)
    x = counter_fading_power(keys[:, None], j[None, :], "rayleigh")
    z = words(keys[:, None], (j // 2)[None, :])
    half = np.where(j % 2 == 1, z >> np.uint64(32), z & np.uint64(0xFFFFFFFF))  # block 2w: low half
    u = (half >> np.uint64(9)).astype(np.float64) / 2.0**23
    exact = -np.log(1.0 - u)
    assert x.dtype == np.float64 and x.shape == (5, 300)
    assert np.all(np.abs(x - exact) <= 4 * 2.0**-23 * exact)
    assert np.all(x.astype(np.float32) == x)  # float32 values, widened exactly
    # the draws of one link are not those of its neighbour nor shifted copies of them
    assert not np.any(x[0, 1:] == x[1, :-1]) and not np.any(x[0] == x[1])


def test_grouped_running_capacity_is_the_sum_of_the_blocks_capacities() -> None:
    rng = np.random.default_rng(1)
    links, blocks = 40, 8 * GROUP
    snr = 10 ** rng.uniform(-2, 4, links)
    band = rng.uniform(1e3, 1e6, links)
    x = rng.standard_exponential((blocks, links))
    x[3, 0] = 0.0  # a block that carries nothing
    f = 1.0 + snr * x
    c = band * 0.01
    sums = running_sums(np.zeros(links), group_capacities(f, c))
    per_block = shannon_rate_bps(band, snr * x) * 0.01
    exact = np.cumsum(per_block, axis=0)[GROUP - 1 :: GROUP]
    assert np.allclose(sums, exact, rtol=1e-12, atol=0)
    # inside group g: the running capacity after each block, whose last value is the group's sum
    for g in range(blocks // GROUP):
        before = sums[g - 1] if g else np.zeros(links)
        caps = within_group(f[GROUP * g : GROUP * (g + 1)], before, c)
        assert np.array_equal(caps[-1], sums[g])
        want = before + np.cumsum(per_block[GROUP * g : GROUP * (g + 1)], axis=0)
        assert np.allclose(caps, want, rtol=1e-12, atol=1e-9)


def test_an_snr_beyond_330_db_is_refused() -> None:
    BlockLink([1e33], 1e6, 0.0, 0.01, "rayleigh", 0.0, [np.random.default_rng(0)]).send(1e6)
    with pytest.raises(ValueError, match="330 dB"):
        BlockLink([1.01e33], 1e6, 0.0, 0.01, "rayleigh", 0.0, [np.random.default_rng(0)])
    with pytest.raises(ValueError, match="330 dB"):
        uplink_block_airtimes(
            column_keys(1, ("u",), np.arange(2)),
            np.array([10.0, 1.01e33]),
            np.array([1e6, 1e6]),
            np.array([1e4, 1e4]),
            np.array([1, 1]),
            gap_db=0.0,
            block_s=0.01,
            fading="rayleigh",
            rician_k=0.0,
        )


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
    bits[5] = 0.0  # nothing to send: 0 s, as BlockLink.send
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
        spans += bool(np.any(got[i, : attempts[i]] > block_s))
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
