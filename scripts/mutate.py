#!/usr/bin/env python3
"""Mutation check: plant one known bug at a time in a copy of the code and see the tests catch it.

For each mutation of :data:`MUTATIONS` (one or more exact text replacements and a pytest selection) the
script copies ``src/``, ``tests/`` and ``pyproject.toml`` to a temporary directory, applies the
replacements there, runs the selected tests with ``PYTHONPATH`` pointing at the copy, and prints one
line: ``killed`` (the tests failed, as they must), ``SURVIVED`` (they all passed: the suite cannot see
that bug), or ``ERROR`` (the text to replace is not in the file exactly once, pytest could not run, or
the selection is empty). First it runs each selection once unmutated (``baseline``): a selection that
fails without a mutation would "kill" every mutation and prove nothing. The exit status is 1 if any
mutation survived or errored, else 0. The repository itself is never modified.

It is a tool, not part of the pytest run. Typical use, from the repository root::

    OMP_NUM_THREADS=1 .venv/bin/python scripts/mutate.py            # all mutations
    .venv/bin/python scripts/mutate.py --list                        # the table
    .venv/bin/python scripts/mutate.py --only sign-scale-halved      # one mutation

To add a mutation, append a :class:`Mutation` to :data:`MUTATIONS`: a name, the replacements (file
relative to the repository root, exact old text, new text) and the tests that must catch it (keep
the selection small: with ``-x`` a killed mutation stops at its first failure, but a survivor runs the
whole selection).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COPIED = ("src", "tests", "pyproject.toml")
PYTEST_ARGS = ("-x", "-q", "-p", "no:cacheprovider")


@dataclass(frozen=True)
class Edit:
    """Replace the exact text ``old`` (which must occur once) by ``new`` in ``file``."""

    file: str
    old: str
    new: str


@dataclass(frozen=True)
class Mutation:
    """A planted bug: its edits and the pytest selection (paths or node ids) that must fail."""

    name: str
    edits: tuple[Edit, ...]
    tests: tuple[str, ...]


def mutation(name: str, file: str, old: str, new: str, *tests: str) -> Mutation:
    """A mutation of a single edit."""
    return Mutation(name, (Edit(file, old, new),), tests)


CODECS = "src/fedwave/codecs"
T = "tests/codecs"
SERVER, FL, SIM, CHANNEL = "src/fedwave/server", "src/fedwave/fl", "src/fedwave/sim", "src/fedwave/channel"
TFL, TW = "tests/fl", "tests/wireless"

MUTATIONS: tuple[Mutation, ...] = (
    mutation(
        "fp16-decodes-zero",
        f"{CODECS}/cast.py",
        "        return list(torch.split(t.to(torch.float32), counts))",
        "        return list(torch.split(t.to(torch.float32)"
        " * (0.0 if self.wire_dtype == torch.float16 else 1.0), counts))",
        f"{T}/test_codecs_error.py",
        f"{T}/test_codecs_contract.py",
    ),
    mutation(
        "bf16-decodes-doubled",
        f"{CODECS}/cast.py",
        "            t = t.view(torch.bfloat16)",
        "            t = t.view(torch.bfloat16) * 2",
        f"{T}/test_codecs_error.py",
        f"{T}/test_codecs_contract.py",
    ),
    mutation(
        "sign-scale-halved",
        f"{CODECS}/sign.py",
        "            w.f32(x.abs().sum(dtype=torch.float64) / x.numel())",
        "            w.f32(x.abs().sum(dtype=torch.float64) / x.numel() / 2)",
        f"{T}/test_codecs_error.py",
        f"{T}/test_codecs_contract.py",
    ),
    mutation(
        "qsgd-decode-scale",
        f"{CODECS}/qsgd.py",
        "                out.append(ldexp((signed - s).to(torch.float32) * (mantissa / s), e))",
        "                out.append(ldexp((signed - s).to(torch.float32) * (mantissa / (s + 1)), e))",
        f"{T}/test_codecs_error.py",
        f"{T}/test_codecs_contract.py",
    ),
    mutation(
        "qsgd-level-rounding-down",
        f"{CODECS}/qsgd.py",
        "            level = torch.floor(ratio + noise).clamp_(0, s).to(torch.int64)",
        "            level = torch.floor(ratio + 0.5 * noise).clamp_(0, s).to(torch.int64)",
        f"{T}/test_codecs_error.py",
        f"{T}/test_codecs_contract.py",
    ),
    mutation(
        "topk-index-off-by-one",
        f"{CODECS}/topk.py",
        "            dense[idx] = values",
        "            dense[(idx + 1) % d] = values",
        f"{T}/test_codecs_error.py",
        f"{T}/test_codecs_contract.py",
    ),
    mutation(
        "randk-scale-off-by-one",
        f"{CODECS}/randk.py",
        "            dense[idx] = values * (d / k)",
        "            dense[idx] = values * (d / (k + 1))",
        f"{T}/test_codecs_error.py",
        f"{T}/test_codecs_contract.py",
    ),
    mutation(
        "uniform-deterministic-rounding",
        f"{CODECS}/uniform.py",
        "            codes = torch.floor(scaled + noise).clamp_(0, top).to(torch.uint8).view(-1)[:d]",
        "            codes = torch.floor(scaled + 0.5).clamp_(0, top).to(torch.uint8).view(-1)[:d]",
        f"{T}/test_codecs_error.py",
        f"{T}/test_codecs_contract.py",
    ),
    mutation(
        "terngrad-keeps-too-often",
        f"{CODECS}/terngrad.py",
        "            keep = torch.rand(x.shape, generator=rng) < prob",
        "            keep = torch.rand(x.shape, generator=rng) < prob * 1.1",
        f"{T}/test_codecs_error.py",
        f"{T}/test_codecs_contract.py",
    ),
    mutation(
        "drive-scale",
        f"{CODECS}/rotation.py",
        "                alpha = torch.where(dot > 0, sq / dot, torch.zeros_like(dot))",
        "                alpha = torch.where(dot > 0, 0.9 * sq / dot, torch.zeros_like(dot))",
        f"{T}/test_codecs_estimators.py",
        f"{T}/test_codecs_contract.py",
    ),
    Mutation(
        "rotation-once",
        (
            Edit(f"{CODECS}/rotation.py", "        v = _flip(_hadamard_blocks(v, sizes), second)\n", ""),
            Edit(
                f"{CODECS}/rotation.py",
                "    v = _hadamard_blocks(_flip(v, first), sizes)\n"
                "    return _hadamard_blocks(_flip(v, second), sizes)",
                "    return _hadamard_blocks(_flip(v, first), sizes)",
            ),
        ),
        (f"{T}/test_codecs_estimators.py",),
    ),
    mutation(
        "powersgd-no-restart-guard",
        f"{CODECS}/powersgd.py",
        "            if sum_squares(q_new) < q / m * sum_squares(mat):",
        "            if False:",
        f"{T}/test_codecs_state.py",
        f"{T}/test_codecs_ef.py",
    ),
    mutation(
        "ef-residual-sign",
        f"{CODECS}/ef.py",
        "residuals = [(u - got.to(torch.float32)).contiguous() for u, got",
        "residuals = [(got.to(torch.float32) - u).contiguous() for u, got",
        f"{T}/test_codecs_state.py",
        f"{T}/test_codecs_ef.py",
    ),
    mutation(
        "ef-without-contraction",
        f"{CODECS}/ef.py",
        "        self.sender = inner.contraction()",
        "        self.sender = inner",
        f"{T}/test_codecs_ef.py",
    ),
    mutation(
        "ef-keeps-non-finite-residual",
        f"{CODECS}/ef.py",
        "            if all(_finite(t) for t in targets) and all(_finite(r) for r in residuals):",
        "            if True:",
        f"{T}/test_codecs_ef.py",
    ),
    mutation(
        "decode-ignores-expected-shapes",
        f"{CODECS}/header.py",
        "        want = expected[i] if expected is not None else None",
        "        want = None",
        f"{T}/test_codecs_malformed.py",
    ),
    mutation(
        "no-span-check",
        f"{CODECS}/header.py",
        "        if meta.span > MAX_ELEMENTS:",
        "        if False:",
        f"{T}/test_codecs_malformed.py",
    ),
    # --- the clock, the BS and the driver (issues 8 and 9) -------------------------------------------
    mutation(
        "aggregate-sign-flipped",
        f"{SERVER}/bs.py",
        '        pseudo = mean if self.algorithm == "fedsgd" else [-m for m in mean]',
        "        pseudo = mean",
        f"{TFL}/test_fl_loop.py::test_training_improves_accuracy",
    ),
    mutation(
        "staleness-weight-ignored",
        f"{SERVER}/bs.py",
        "        weights = [b * u.weight for b, u in zip(base, good)]",
        "        weights = [b * 1.0 for b, u in zip(base, good)]",
        f"{TFL}/test_fl_trust.py::test_fedbuff_staleness_damps_a_uniformly_stale_buffer",
    ),
    mutation(
        "staleness-normalised-away",
        f"{SERVER}/bs.py",
        "        damping = sum(weights) / sum(base)",
        "        damping = 1.0",
        f"{TFL}/test_fl_trust.py::test_fedbuff_staleness_damps_a_uniformly_stale_buffer",
    ),
    mutation(
        "roll-back-disabled",
        f"{SERVER}/bs.py",
        "        if self._diverged(outcome.step_norm, before[0]):",
        "        if False:",
        f"{TFL}/test_fl_trust.py::test_a_huge_update_is_rolled_back_and_recorded",
    ),
    mutation(
        "arrival-dropped",
        f"{FL}/driver.py",
        "        for a in arrivals:\n            pending = self._take(a)\n            if pending.skip:",
        "        for a in arrivals[1:]:\n            pending = self._take(a)\n            if pending.skip:",
        f"{TFL}/test_fl_trust.py::test_async_aggregates_every_arrival_exactly_once",
    ),
    mutation(
        "ef-takes-back-with-wrong-sign",
        f"{FL}/driver.py",
        "                    state[key] = res + d.to(res.dtype)",
        "                    state[key] = res - d.to(res.dtype)",
        f"{TFL}/test_fl_trust.py::test_error_feedback_takes_back_a_message_that_never_arrived",
    ),
    mutation(
        "trigger-reference-moves-on-encode",
        f"{FL}/driver.py",
        '        if skip:\n            return _Pending(ue, round, b"", None, num, True, None)',
        "        if reference is not None:\n            self.last_uploaded[ue] = reference\n"
        '        if skip:\n            return _Pending(ue, round, b"", None, num, True, None)',
        f"{TFL}/test_fl_trust.py::test_trigger_reference_moves_only_on_delivery",
    ),
    mutation(
        "first-broadcast-lossy",
        f"{FL}/driver.py",
        "        if version == 0 or self.downlink.exact:",
        "        if self.downlink.exact:",
        f"{TFL}/test_fl_trust.py::test_first_broadcast_is_exact_under_a_lossy_downlink",
    ),
    mutation(
        "stall-never-stops",
        f"{FL}/driver.py",
        "        if limit is not None and self._idle_rounds >= limit:",
        "        if False:",
        f"{TFL}/test_fl_trust.py::test_a_run_that_aggregates_nothing_stops_with_an_error",
    ),
    mutation(
        "fdma-band-shared-with-skippers",
        f"{SIM}/clock.py",
        "        up = np.flatnonzero(np.asarray(uploads, dtype=bool).reshape(n))",
        "        up = np.arange(n)",
        f"{TW}/test_wireless_policies.py::test_event_triggered_skip",
        f"{TFL}/test_fl_trust.py::test_fdma_band_goes_to_uploaders_so_skips_save_time",
    ),
    mutation(
        "queue-counted-as-waiting",
        f"{SIM}/timeline.py",
        "    queue = _overlap(t_start, c.t_download_start, t_start, t_end) + _overlap(",
        "    queue = 0.0 * _overlap(t_start, c.t_download_start, t_start, t_end) * _overlap(",
        f"{TW}/test_wireless_access.py",
    ),
    mutation(
        "broadcast-at-the-best-receiver",
        f"{CHANNEL}/blocks.py",
        "        f = gain_factors(x, self._s[None, :]).min(axis=1, keepdims=True)",
        "        f = gain_factors(x, self._s[None, :]).max(axis=1, keepdims=True)",
        f"{TW}/test_wireless_fading.py",
    ),
    mutation(
        "one-fading-draw-per-upload",
        f"{CHANNEL}/blocks.py",
        "        f = gain_factors(x, self._s[None, :]).min(axis=1, keepdims=True)",
        "        f = gain_factors(x[:1].repeat(n, axis=0), self._s[None, :]).min(axis=1, keepdims=True)",
        f"{TW}/test_wireless_fading.py",
        f"{TW}/test_wireless_channel.py",
    ),
    mutation(
        "waterfall-on-the-faded-snr",
        f"{SIM}/clock.py",
        "        return packet_error_probability(snr, self.waterfall_m)",
        "        return packet_error_probability(snr * np.random.default_rng().standard_exponential(), "
        "self.waterfall_m)",
        f"{TW}/test_wireless_fading.py::test_packet_errors_use_the_mean_snr",
    ),
    mutation(
        "deadline-closes-early",
        f"{SIM}/policies.py",
        "        yield state.all_done | env.timeout(self.cfg.deadline_s)",
        "        yield state.all_done | env.timeout(self.cfg.deadline_s * 0.9)",
        f"{TW}/test_wireless_policies.py",
        f"{TW}/test_wireless_vround.py",
    ),
    mutation(
        "robust-rule-ignored",
        f"{SERVER}/bs.py",
        "        if self.aggregator.robust:\n            return self._aggregate_robust(good, outcome)",
        "        if False:\n            return self._aggregate_robust(good, outcome)",
        "tests/server/test_bs_robust.py",
    ),
    mutation(
        "robust-staleness-dropped",
        f"{SERVER}/bs.py",
        "[u.tensors if u.weight == 1.0 else [t * u.weight for t in u.tensors] for u in good]",
        "[u.tensors for u in good]",
        "tests/server/test_bs_robust.py",
    ),
    mutation(
        "centered-clip-forgets-centre",
        f"{SERVER}/bs.py",
        "            self.center = [t.clone() for t in robust]",
        "            self.center = None",
        "tests/server/test_bs_robust.py",
    ),
    mutation(
        "trimmed-mean-trims-one-less",
        f"{SERVER}/aggregators.py",
        "        return torch.sort(x, dim=0).values[k : n - k].mean(dim=0)",
        "        return torch.sort(x, dim=0).values[max(k - 1, 0) : n - k].mean(dim=0)",
        "tests/server/test_server_aggregators.py",
    ),
    mutation(
        "sign-flip-not-flipped",
        "src/fedwave/adversary/behaviours.py",
        '    return [-_param(ctx, "factor", 1.0) * t for t in update]',
        '    return [_param(ctx, "factor", 1.0) * t for t in update]',
        "tests/adversary/test_adversary_behaviours.py",
        "tests/adversary/test_adversary_runs.py::test_median_and_trimmed_mean_resist_sign_flip_where_mean_does_not",
    ),
    # issue 14: the radio
    mutation(
        "aircomp-noise-variance-halved",
        f"{CHANNEL}/aircomp.py",
        "    return float(noise_power_w) / float(rho0_w)",
        "    return 0.5 * float(noise_power_w) / float(rho0_w)",
        f"{TW}/test_wireless_aircomp.py",
        f"{TFL}/test_fl_aircomp.py",
    ),
    mutation(
        "aircomp-rho0-at-the-strongest-ue",
        f"{CHANNEL}/aircomp.py",
        "    rho0 = float(np.min(p[active] * g[active] * x[active]))",
        "    rho0 = float(np.max(p[active] * g[active] * x[active]))",
        f"{TW}/test_wireless_aircomp.py",
    ),
    mutation(
        "min-latency-finishes-one-percent-late",
        f"{CHANNEL}/allocation.py",
        "    return t if surplus(t) <= 0 else t * (1 + 4 * np.finfo(float).eps)",
        "    return 1.01 * (t if surplus(t) <= 0 else t * (1 + 4 * np.finfo(float).eps))",
        f"{TW}/test_wireless_allocation.py",
    ),
    mutation(
        "best-channel-takes-the-worst",
        f"{FL}/selection.py",
        "    order = sorted(ctx.available, key=lambda u: (-float(snr[u]), u))",
        "    order = sorted(ctx.available, key=lambda u: (float(snr[u]), u))",
        f"{TFL}/test_fl_selection_radio.py",
    ),
    mutation(
        "proportional-fair-average-never-served",
        f"{FL}/selection.py",
        "        u: keep * average.get(u, 0.0) + (float(rates[u]) / window if u in picked else 0.0)",
        "        u: keep * average.get(u, 0.0)",
        f"{TFL}/test_fl_selection_radio.py",
    ),
    mutation(
        "gauss-markov-innovation-too-small",
        f"{CHANNEL}/gaussmarkov.py",
        "            c = math.sqrt(max(0.0, 1.0 - self.rho * self.rho))",
        "            c = max(0.0, 1.0 - self.rho * self.rho)",
        f"{TW}/test_wireless_gaussmarkov.py",
    ),
    mutation(
        "gauss-markov-jump-forgets-the-gap",
        f"{CHANNEL}/gaussmarkov.py",
        "            a = self.rho**m",
        "            a = self.rho",
        f"{TW}/test_wireless_gaussmarkov.py",
    ),
    mutation(
        "radio-rules-get-no-estimate",
        f"{FL}/driver.py",
        '        self.wants_radio = cfg.fl.sampling != "poisson" and (',
        "        self.wants_radio = False and (",
        f"{TFL}/test_fl_selection_radio.py",
    ),
    # issue 12: streamed events and the energy axis
    mutation(
        "event-totals-uplink-counts-compute",
        f"{FL}/summary.py",
        "                self.uplink_s += e.t_upload_end - e.t_upload_start",
        "                self.uplink_s += e.t_compute_end - e.t_compute_start",
        "tests/engine/test_engine_streaming.py",
    ),
    mutation(
        "round-totals-staircase-keeps-repeats",
        f"{FL}/summary.py",
        "        if record.accuracy > self._highest:",
        "        if record.accuracy >= self._highest:",
        "tests/engine/test_engine_streaming.py",
    ),
    mutation(
        "round-totals-first-record-not-summed",
        f"{FL}/summary.py",
        "        for key in SUMMED:\n            self.sums[key] += getattr(record, key)",
        "        for key in SUMMED:\n            self.sums[key] += getattr(record, key) * (self.rounds > 1)",
        "tests/engine/test_engine_streaming.py",
    ),
    mutation(
        "cli-run-keeps-its-records",
        "src/fedwave/cli.py",
        "keep_events=False, keep_records=False)",
        "keep_events=False, keep_records=True)",
        "tests/engine/test_engine_streaming.py",
    ),
    mutation(
        "convchain-first-layer-pads-height-as-width",
        "src/fedwave/engine/convchain.py",
        "    padded = functional.pad(a, (pw, pw, ph, ph))",
        "    padded = functional.pad(a, (ph, ph, pw, pw))",
        "tests/engine/test_engine_convchain.py",
    ),
    mutation(
        "convchain-linear-step-sign-flipped",
        "src/fedwave/engine/convchain.py",
        "                weight.addmm_(g.t(), a, alpha=-lr)  # W <- W - lr g^T a",
        "                weight.addmm_(g.t(), a, alpha=lr)  # W <- W - lr g^T a",
        "tests/engine/test_engine_convchain.py",
    ),
    mutation(
        "convchain-conv-bias-gradient-halved",
        "src/fedwave/engine/convchain.py",
        "                grads[layer.bias] = grad_b if grad_b is not None else g.sum(dim=(0, 2, 3))",
        "                grads[layer.bias] = 0.5 * (grad_b if grad_b is not None else g.sum(dim=(0, 2, 3)))",
        "tests/engine/test_engine_convchain.py",
    ),
    mutation(
        "convchain-pool-gradient-to-window-corner",
        "src/fedwave/engine/convchain.py",
        "            indices[i] = where.contiguous()",
        "            indices[i] = where.contiguous() // 2 * 2",
        "tests/engine/test_engine_convchain.py",
    ),
    mutation(
        "convchain-relu-gradient-tests-input",
        "src/fedwave/engine/convchain.py",
        "        return _aten.threshold_backward(g, out, 0)",
        "        return _aten.threshold_backward(g, out + 0.01, 0)",
        "tests/engine/test_engine_convchain.py",
    ),
    mutation(
        "convchain-clip-skipped",
        "src/fedwave/engine/convchain.py",
        "        clip_stacked_(grads, clip)",
        "        pass",
        "tests/engine/test_engine_convchain.py",
    ),
    mutation(
        "batched-alone-ue-skips-last-batch",
        "src/fedwave/engine/batched.py",
        "        for batch in batches[0]:",
        "        for batch in batches[0][:-1]:",
        "tests/engine/test_engine_batched.py::test_convolution_chain_ues_alone_take_the_written_out_step",
    ),
    mutation(
        "dpchain-norm-misses-the-bias",
        "src/fedwave/engine/dpchain.py",
        "        if layer.bias is not None:\n            sq += g_sq",
        "        if layer.bias is None:\n            sq += g_sq",
        "tests/engine/test_engine_batched.py::test_dp_sgd_of_linear_chains_is_vectorised_and_matches_sequential",
    ),
    mutation(
        "dpchain-expected-batch-size-off-by-1pct",
        "src/fedwave/engine/dpchain.py",
        "        expected = q * users[k].num_data_points  # the expected batch size, not the realised one",
        "        expected = 1.01 * q * users[k].num_data_points",
        "tests/engine/test_engine_batched.py::test_dp_sgd_of_linear_chains_is_vectorised_and_matches_sequential",
    ),
    mutation(
        "dpchain-dropout-seed-not-drawn",
        "src/fedwave/engine/dpchain.py",
        "    if idx.numel() > 0:\n        torch.randint(0, 2**62, (1,), generator=gen)",
        "    if False:\n        torch.randint(0, 2**62, (1,), generator=gen)",
        "tests/engine/test_engine_batched.py::test_dp_sgd_of_linear_chains_is_vectorised_and_matches_sequential",
        "tests/engine/test_engine_dpconv.py::test_a_ues_update_equals_the_sequential_users_from_the_same_payload",
    ),
    mutation(
        "dpchain-padding-counts-as-examples",
        "src/fedwave/engine/dpchain.py",
        "    factors *= real  # padding, and the UEs without a step, add nothing",
        "    factors *= 1.0  # padding, and the UEs without a step, add nothing",
        "tests/engine/test_engine_batched.py::test_dp_sgd_of_linear_chains_is_vectorised_and_matches_sequential",
    ),
    mutation(
        "evaluate-drops-the-last-partial-batch",
        "src/fedwave/server/evaluate.py",
        "    for start in range(0, x.shape[0], batch_size):",
        "    for start in range(0, x.shape[0] - batch_size + 1, batch_size):",
        "tests/server/test_server_evaluate.py",
    ),
    mutation(
        "dpconv-norm-misses-conv-weights",
        "src/fedwave/engine/dpconv.py",
        "            sq += torch.linalg.vecdot(flat, flat).double()",
        "            sq += 0.0 * torch.linalg.vecdot(flat, flat).double()",
        "tests/engine/test_engine_dpconv.py",
    ),
    mutation(
        "dpconv-norm-misses-conv-bias",
        "src/fedwave/engine/dpconv.py",
        "                sq += torch.linalg.vecdot(per_b, per_b).double()",
        "                sq += 0.0 * torch.linalg.vecdot(per_b, per_b).double()",
        "tests/engine/test_engine_dpconv.py",
    ),
    mutation(
        "dpconv-norm-misses-linear-bias",
        "src/fedwave/engine/dpconv.py",
        "            if layer.bias is not None:\n                sq += g_sq",
        "            if layer.bias is None:\n                sq += g_sq",
        "tests/engine/test_engine_dpconv.py",
    ),
    mutation(
        "dpconv-kernel-axes-swapped",
        "src/fedwave/engine/dpconv.py",
        "    return view.permute(0, 1, 4, 5, 2, 3)",
        "    return view.permute(0, 1, 5, 4, 2, 3)",
        "tests/engine/test_engine_dpconv.py",
    ),
    mutation(
        "dpconv-step-sign-flipped",
        "src/fedwave/engine/dpconv.py",
        "                p.add_(total / expected, alpha=-lr)",
        "                p.add_(total / expected, alpha=lr)",
        "tests/engine/test_engine_dpconv.py::test_a_ues_update_equals_the_sequential_users_from_the_same_payload",
    ),
    mutation(
        "dpconv-noise-dropped",
        "src/fedwave/engine/dpconv.py",
        "                e = noise[j].to(device=p.device, dtype=p.dtype)",
        "                e = 0.0 * noise[j].to(device=p.device, dtype=p.dtype)",
        "tests/engine/test_engine_batched.py::test_dp_sgd_of_convolution_chains_is_written_out_and_matches_sequential",
    ),
    mutation(
        "dpconv-expected-batch-size-off-by-1pct",
        "src/fedwave/engine/dpconv.py",
        "        expected = q * n  # the expected batch size, not the realised one",
        "        expected = 1.01 * q * n",
        "tests/engine/test_engine_batched.py::test_dp_sgd_of_convolution_chains_is_written_out_and_matches_sequential",
    ),
    mutation(
        "dpconv-clip-factor-skips-conv-weights",
        "src/fedwave/engine/dpconv.py",
        "        grads[layer.weight] = torch.mm(f.unsqueeze(0), per_w.flatten(1)).view(shape)",
        "        grads[layer.weight] = per_w.sum(0).view(shape)",
        "tests/engine/test_engine_dpconv.py",
    ),
    mutation(
        "chain-accepts-a-module-used-twice",
        "src/fedwave/engine/chain.py",
        "        if id(m) in seen or m._forward_hooks or m._forward_pre_hooks",
        "        if m._forward_hooks or m._forward_pre_hooks",
        "tests/engine/test_engine_convchain.py",
    ),
    mutation(
        "energy-axis-plots-bytes",
        "src/fedwave/report/frames.py",
        '    df["cum_energy_j"] = df.groupby("run_id", sort=False)["energy_j"].cumsum()',
        '    df["cum_energy_j"] = df.groupby("run_id", sort=False)["bytes_up"].cumsum()',
        "tests/report/test_report_plots.py",
    ),
    mutation(
        "vround-completions-ordered-by-ue",
        f"{SIM}/vround.py",
        "    order = np.lexsort((np.arange(n), t_ce, t_ue))",
        "    order = np.lexsort((-np.arange(n), t_ce, t_ue))",
        f"{TW}/test_wireless_vround.py",
    ),
    mutation(
        "vround-deadline-excludes-its-instant",
        f"{SIM}/vround.py",
        "        counted = t_ue[done_rows] <= t0 + cfg.policy.deadline_s",
        "        counted = t_ue[done_rows] < t0 + cfg.policy.deadline_s",
        f"{TW}/test_wireless_vround.py",
    ),
    mutation(
        "vround-first-k-ties-never-complete",
        f"{SIM}/vround.py",
        '            return t_k, int(np.searchsorted(t_ue[order], t_k, side="right"))',
        '            return t_k, int(np.searchsorted(t_ue[order], t_k, side="left")) + 1',
        f"{TW}/test_wireless_vround.py",
    ),
    mutation(
        "vround-radio-energy-only-when-finished",
        f"{SIM}/vround.py",
        '"energy_radio_j": np.where(sending, power * on_air, 0.0)',
        '"energy_radio_j": np.where(finished, power * on_air, 0.0)',
        f"{TW}/test_wireless_vround.py",
    ),
    mutation(
        "block-airtimes-carry-off-by-one-block",
        f"{CHANNEL}/blocks.py",
        "        carry[sel] = sums[-1]",
        "        carry[sel] = sums[-1] * (1.0 - 1e-9)",
        f"{TW}/test_wireless_counter.py",
    ),
    mutation(
        "group-capacity-skips-the-last-block",
        f"{CHANNEL}/blocks.py",
        "        p = np.cumprod(f.reshape(-1, GROUP), axis=1, dtype=np.float64)[:, -1:]",
        "        p = np.cumprod(f.reshape(-1, GROUP), axis=1, dtype=np.float64)[:, -2:-1]",
        f"{TW}/test_wireless_counter.py",
        f"{TW}/test_wireless_fading.py",
    ),
    mutation(
        "many-links-group-capacity-skips-the-last-block",
        f"{CHANNEL}/blocks.py",
        "        p = f[0::GROUP].copy()\n        for i in range(1, GROUP):",
        "        p = f[0::GROUP].copy()\n        for i in range(1, GROUP - 1):",
        f"{TW}/test_wireless_counter.py",
    ),
    mutation(
        "block-link-drops-the-carry-between-chunks",
        f"{CHANNEL}/blocks.py",
        "        return np.cumsum(np.concatenate([np.reshape(carry, (1, -1)), c]), axis=0)[1:]",
        "        return np.cumsum(np.concatenate([0.0 * np.reshape(carry, (1, -1)), c]), axis=0)[1:]",
        f"{TW}/test_wireless_fading.py",
        f"{TW}/test_wireless_counter.py",
    ),
    mutation(
        "block-airtimes-end-measured-from-the-group-start",
        f"{CHANNEL}/blocks.py",
        "            before = np.where(i > 0, caps[np.maximum(i - 1, 0), cols], before_g)",
        "            before = before_g",
        f"{TW}/test_wireless_counter.py",
    ),
    mutation(
        "block-link-end-measured-from-the-group-start",
        f"{CHANNEL}/blocks.py",
        "        before = float(caps[i - 1]) if i else (float(self._sums[g - 1]) if g else 0.0)",
        "        before = float(self._sums[g - 1]) if g else 0.0",
        f"{TW}/test_wireless_fading.py",
    ),
    mutation(
        "word-halves-skip-a-word",
        "src/fedwave/counter_rng.py",
        "        step = np.arange(count, dtype=np.uint64) * _GOLDEN",
        "        step = np.arange(count, dtype=np.uint64) * np.uint64(2) * _GOLDEN",
        f"{TW}/test_wireless_counter.py",
    ),
    mutation(
        "rayleigh-run-from-u-not-one-minus-u",
        "src/fedwave/channel/fading.py",
        "    np.subtract(np.float32(2.0), v, out=v)\n",
        "    np.subtract(v, np.float32(1.0), out=v)\n",
        f"{TW}/test_wireless_counter.py",
    ),
    mutation(
        "rayleigh-run-halves-swapped",
        "src/fedwave/channel/fading.py",
        "    np.negative(lv.transpose(0, 2, 1), out=x)\n",
        "    np.negative(lv[..., ::-1].transpose(0, 2, 1), out=x)\n",
        f"{TW}/test_wireless_counter.py",
    ),
    mutation(
        "rayleigh-uses-the-high-half-for-even-blocks",
        "src/fedwave/channel/fading.py",
        "        half = np.broadcast_to(j & 1, z.shape)[..., None]",
        "        half = np.broadcast_to(1 - (j & 1), z.shape)[..., None]",
        f"{TW}/test_wireless_counter.py",
    ),
    mutation(
        "rayleigh-keeps-24-bits",
        "src/fedwave/channel/fading.py",
        "    h >>= np.uint32(32 - _RAYLEIGH_BITS)\n",
        "    h >>= np.uint32(32 - _RAYLEIGH_BITS - 1)\n",
        f"{TW}/test_wireless_counter.py",
    ),
    mutation(
        "fading-group-capacities-drop-a-block",
        f"{CHANNEL}/blocks.py",
        "    for i in range(1, GROUP):\n        np.multiply(rows[i], s, out=t)",
        "    for i in range(1, GROUP - 1):\n        np.multiply(rows[i], s, out=t)",
        f"{TW}/test_wireless_counter.py",
    ),
    mutation(
        "tile-rayleigh-rows-take-the-wrong-half",
        f"{CHANNEL}/blocks.py",
        "            return [self._draws[i // 2 :: half, :, i % 2] for i in range(GROUP)]",
        "            return [self._draws[i // 2 :: half, :, 1 - i % 2] for i in range(GROUP)]",
        f"{TW}/test_wireless_counter.py",
    ),
    mutation(
        "tile-rayleigh-block-powers-keep-the-sign",
        f"{CHANNEL}/blocks.py",
        "            return -self._draws[block >> 1, link, block & 1]",
        "            return self._draws[block >> 1, link, block & 1]",
        f"{TW}/test_wireless_counter.py",
    ),
    mutation(
        "quick-exit-misses-derived-file-classes",
        "src/fedwave/cli.py",
        "            stack.extend(type.__subclasses__(kind))",
        "            pass",
        "tests/cli/test_cli_exit.py",
    ),
    mutation(
        "local-result-counts-not-checked-for-integers",
        f"{SIM}/protocol.py",
        "isinstance(v, Integral) and not isinstance(v, bool) and 0 <= v <= MAX_COUNT",
        "0 <= v",
        f"{TW}/test_wireless_vround.py::test_a_driver_that_returns_a_bad_result_is_named_by_both_clocks",
    ),
    mutation(
        "tile-retransmission-starts-from-zero",
        f"{CHANNEL}/blocks.py",
        "            goal[t] = np.where(done[t] < attempts[t], target + size[t], np.inf)\n",
        "            goal[t] = np.where(done[t] < attempts[t], size[t], np.inf)\n",
        f"{TW}/test_wireless_counter.py",
    ),
    mutation(
        "snr-ceiling-not-enforced",
        f"{CHANNEL}/blocks.py",
        "    if np.all(snr > 0) and np.all(snr <= MAX_SNR):",
        "    if np.all(snr > 0) and np.all(snr <= MAX_SNR * 1e300):",
        f"{TW}/test_wireless_counter.py",
    ),
    mutation(
        "snr-check-ignores-access-shares",
        f"{SIM}/clock.py",
        "            share = np.minimum(share, self._shares / self._shares.sum())",
        "            share = np.minimum(share, 1.0)",
        f"{TW}/test_wireless_config.py",
    ),
    mutation(
        "downlink-snr-not-checked",
        f"{SIM}/clock.py",
        '("downlink", down, "cell.bs_power_dbm", np.full(self.num_ues, MAX_SNR), 1)',
        '("downlink", up, "cell.bs_power_dbm", np.full(self.num_ues, MAX_SNR), 1)',
        f"{TW}/test_wireless_config.py",
    ),
    mutation(
        "counter-streams-share-the-first-index",
        "src/fedwave/counter_rng.py",
        "        z += np.uint64(1)",
        "        z //= np.uint64(2)",
        f"{TW}/test_wireless_counter.py",
    ),
    mutation(
        "chain-fused-step-halved",
        "src/fedwave/engine/chain.py",
        "            weight.baddbmm_(g.transpose(1, 2), acts[i], alpha=-lr)",
        "            weight.baddbmm_(g.transpose(1, 2), acts[i], alpha=-lr / 2)",
        "tests/engine/test_engine_chain.py",
    ),
    mutation(
        "chain-shared-first-step-sign",
        "src/fedwave/engine/chain.py",
        "torch.baddbmm(stack, g.transpose(1, 2), acts[i], alpha=-lr)",
        "torch.baddbmm(stack, g.transpose(1, 2), acts[i], alpha=lr)",
        "tests/engine/test_engine_chain.py",
    ),
    mutation(
        "chain-relu-passes-zeros",
        "src/fedwave/engine/chain.py",
        "            g = g * (acts[i + 1] > 0)",
        "            g = g * (acts[i + 1] >= 0)",
        "tests/engine/test_engine_chain.py",
    ),
    mutation(
        "chain-clip-skipped",
        "src/fedwave/engine/chain.py",
        "        clip_stacked_(grads, clip)",
        "        pass",
        "tests/engine/test_engine_chain.py",
    ),
    mutation(
        "chain-padding-weights-ignored",
        "src/fedwave/engine/chain.py",
        "        g.mul_(w.unsqueeze(2).to(g.dtype))",
        "        g.mul_(1.0 / b)",
        "tests/engine/test_engine_chain.py",
    ),
    mutation(
        "flat-sum-drops-last-update",
        f"{SERVER}/aggregate.py",
        "        for f, wk in zip(flats, weights):",
        "        for f, wk in zip(flats[:-1], weights):",
        "tests/server/test_server_aggregation.py",
    ),
    mutation(
        "flat-view-ignores-gaps",
        f"{SERVER}/aggregate.py",
        " or t.storage_offset() != end or ",
        " or ",
        "tests/server/test_server_aggregation.py",
    ),
    mutation(
        "frame-checksum-skips-a-piece",
        f"{CODECS}/header.py",
        "    for piece in pieces:\n        crc = crc32(piece, crc)",
        "    for piece in pieces[:-1]:\n        crc = crc32(piece, crc)",
        f"{T}/test_codecs_frame.py",
    ),
    mutation(
        "quick-exit-status-lost",
        "src/fedwave/cli.py",
        "    os._exit(_EXIT_STATUS[0])",
        "    os._exit(0)",
        "tests/cli/test_cli_exit.py",
    ),
    mutation(
        "is-finite-sum-only",
        f"{SERVER}/aggregate.py",
        "            and not bool(torch.isfinite(t).all())",
        "            and True",
        "tests/server/test_server_finite.py",
    ),
    mutation(
        "expected-layout-skips-codec-id",
        f"{CODECS}/header.py",
        "            and payload[:3] == bytes((MAGIC, VERSION, int(codec_id)))",
        "            and payload[:1] == bytes((MAGIC,))",
        f"{T}/test_codecs_expected_layout.py",
    ),
    mutation(
        "batched-padding-weighs-like-samples",
        "src/fedwave/engine/batches.py",
        "        w[k, :b] = 1.0 / b",
        "        w[k, :b] = 1.0 / width",
        "tests/engine/test_engine_batched.py",
    ),
    mutation(
        "batched-ignores-parameter-hooks",
        "src/fedwave/engine/batched.py",
        "        if p._backward_hooks or getattr(",
        "        if False and p._backward_hooks or getattr(",
        "tests/engine/test_engine_batched.py::test_hooks_and_own_forwards_are_honoured_as_sequential_does",
    ),
    mutation(
        "batched-ignores-module-hooks",
        "src/fedwave/engine/batched.py",
        "    for m in (*model.modules(), *loss.modules()):",
        "    for m in loss.modules():",
        "tests/engine/test_engine_batched.py::test_hooks_and_own_forwards_are_honoured_as_sequential_does",
    ),
    mutation(
        "batched-ignores-loss-hooks",
        "src/fedwave/engine/batched.py",
        "    for m in (*model.modules(), *loss.modules()):",
        "    for m in model.modules():",
        "tests/engine/test_engine_batched.py::test_hooks_and_own_forwards_are_honoured_as_sequential_does",
    ),
    mutation(
        "driver-asks-about-hooks-in-the-first-round-only",
        "src/fedwave/fl/driver.py",
        "            if reason is None:  # hooks may come and go between rounds",
        "            if reason is None and version == 0:",
        "tests/engine/test_engine_batched.py::test_hooks_and_own_forwards_are_honoured_as_sequential_does",
    ),
    mutation(
        "chain-takes-an-own-forward-for-its-layer",
        "src/fedwave/engine/chain.py",
        ' or m._forward_pre_hooks or "forward" in vars(m):',
        " or m._forward_pre_hooks:",
        "tests/engine/test_engine_batched.py::test_hooks_and_own_forwards_are_honoured_as_sequential_does",
    ),
    mutation(
        "batched-ignores-global-hooks",
        "src/fedwave/engine/batched.py",
        "    if any(global_hooks):",
        "    if False:",
        "tests/engine/test_engine_batched.py::test_hooks_and_own_forwards_are_honoured_as_sequential_does",
    ),
    mutation(
        "allocator-keeps-mmap-threshold",
        "src/fedwave/engine/allocator.py",
        "        ok = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(",
        "        ok = True and bool(",
        "tests/engine/test_engine_allocator.py",
    ),
    mutation(
        "allocator-sets-nothing-but-says-it-did",
        "src/fedwave/engine/allocator.py",
        "        ok = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(",
        "        ok = True or bool(",
        "tests/engine/test_engine_allocator.py",
    ),
    mutation(
        "allocator-applies-again-on-every-call",
        "src/fedwave/engine/allocator.py",
        '    if "applied" in _answer:',
        "    if False:",
        "tests/engine/test_engine_allocator.py",
    ),
    mutation(
        "study-worker-keeps-glibc-defaults",
        "src/fedwave/fl/parallel.py",
        "    keep_freed_memory()  # a spawned process starts with glibc's defaults again",
        "",
        "tests/engine/test_engine_allocator.py",
    ),
    mutation(
        "cuda-trains-in-tf32",
        "src/fedwave/engine/device.py",
        "        torch.backends.cudnn.allow_tf32 = False  # convolutions (and cuDNN's RNNs)\n",
        "",
        "tests/engine/test_engine_device.py",
    ),
    mutation(
        "cuda-nondeterministic-kernels",
        "src/fedwave/engine/device.py",
        "            torch.use_deterministic_algorithms(True)\n",
        "",
        "tests/engine/test_engine_device.py",
    ),
    mutation(
        "cuda-deterministic-false-ignored",
        "src/fedwave/engine/device.py",
        "        if deterministic:",
        "        if True:",
        "tests/engine/test_engine_device.py",
    ),
    mutation(
        "restore-settings-leaves-tf32-off",
        "src/fedwave/engine/device.py",
        "    torch.backends.cudnn.allow_tf32 = saved.cudnn_allow_tf32\n",
        "",
        "tests/engine/test_engine_device.py",
    ),
    mutation(
        "device-out-of-memory-unexplained",
        "src/fedwave/engine/device.py",
        "    if isinstance(exc, torch.OutOfMemoryError):",
        "    if False:",
        "tests/engine/test_engine_device.py",
    ),
    mutation(
        "device-training-error-unexplained",
        "src/fedwave/fl/driver.py",
        "            if explained is None:",
        "            if True:",
        "tests/engine/test_engine_device.py",
    ),
    # --- issue 12, 2026-12-01: a run's per-round work trimmed -------------------------------------------
    mutation(
        "bs-weight-0-update-unchecked",
        f"{SERVER}/bs.py",
        "            or ((u.weight == 0 or u.num_samples == 0) and not is_finite(u.tensors))",
        "            or False",
        "tests/server/test_server_aggregation.py",
    ),
    mutation(
        "bs-mean-not-checked",
        f"{SERVER}/bs.py",
        "        if mean is None or not all(",
        "        if mean is None or False and not all(",
        "tests/server/test_server_aggregation.py",
    ),
    mutation(
        "bs-buffers-unchecked",
        f"{SERVER}/bs.py",
        "            (u.buffers is not None and not is_finite(u.buffers))",
        "            False",
        "tests/server/test_server_aggregation.py",
    ),
    mutation(
        "batched-stack-not-differenced",
        "src/fedwave/engine/batched.py",
        "            diffs.append(p.sub_(s).unbind(0))",
        "            diffs.append(p.unbind(0))",
        "tests/engine/test_engine_batched.py",
    ),
    mutation(
        "timeline-first-event-lost",
        f"{FL}/run.py",
        "            writer.writerows(map(values, events))",
        "            writer.writerows(map(values, events[1:]))",
        "tests/engine/test_engine_streaming.py",
    ),
    mutation(
        "encode-takes-integer-tensors",
        f"{CODECS}/base.py",
        "        if dtype not in DTYPE_CODES:",
        "        if False:",
        f"{T}/test_codecs_malformed.py",
    ),
    mutation(
        "startup-imports-not-frozen",
        "src/fedwave/startup.py",
        "        gc.freeze()",
        "        pass",
        "tests/cli/test_cli_startup.py",
    ),
    mutation(
        "startup-collector-not-paused",
        "src/fedwave/startup.py",
        "    gc.disable()",
        "    pass",
        "tests/cli/test_cli_startup.py",
    ),
    mutation(
        "quick-exit-misses-frozen-files",
        "src/fedwave/cli.py",
        "    gc.unfreeze()  #",
        "    pass  #",
        "tests/cli/test_cli_exit.py",
    ),
    mutation(
        "vs-flower-threads-ignored",
        "src/fedwave/bench/vs_flower.py",
        '        f"engine.threads={args.threads or args.cpus}",',
        '        "engine.threads=1",',
        "tests/bench/test_bench_commands.py::test_vs_flower_gives_fedwave_the_cpus_flower_gets_unless_told",
    ),
    mutation(
        "cuda-overrides-users-cublas-setting",
        "src/fedwave/engine/device.py",
        'os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)',
        'os.environ["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_WORKSPACE',
        "tests/engine/test_engine_device.py",
    ),
)


@dataclass(frozen=True)
class Result:
    """What happened to one mutation (or baseline): status, seconds, the end of pytest's output."""

    name: str
    status: str
    seconds: float
    tail: str


def apply(tree: Path, edits: Sequence[Edit]) -> None:
    """Apply ``edits`` to the files under ``tree``.

    Raises:
        ValueError: a file is missing, or its old text does not occur exactly once.
    """
    for edit in edits:
        path = tree / edit.file
        if not path.is_file():
            raise ValueError(f"{edit.file}: no such file")
        text = path.read_text(encoding="utf-8")
        count = text.count(edit.old)
        if count != 1:
            raise ValueError(f"{edit.file}: the text to replace occurs {count} times (must be exactly once)")
        path.write_text(text.replace(edit.old, edit.new), encoding="utf-8")


def _copy(root: Path, into: Path) -> Path:
    tree = into / "repo"
    tree.mkdir()
    for name in COPIED:
        source = root / name
        if source.is_dir():
            shutil.copytree(source, tree / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif source.is_file():
            shutil.copy2(source, tree / name)
    return tree


def run(
    root: Path,
    name: str,
    edits: Sequence[Edit],
    tests: Sequence[str],
    python: str,
    pytest_args: Sequence[str],
    timeout: float,
) -> Result:
    """Copy ``root``'s code, apply ``edits``, run ``tests``; classify pytest's exit status.

    Exit status 0 (all passed) is ``SURVIVED`` for a mutation, ``passed`` for the baseline (no edits);
    1 (tests failed) is ``killed``, or ``FAILED`` for the baseline; anything else (no tests collected,
    usage error, interrupted) and a replacement that does not apply is ``ERROR``. A run longer than
    ``timeout`` seconds is stopped and counts as ``killed (timeout)``.
    """
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fedwave-mutate-") as tmp:
        tree = _copy(root, Path(tmp))
        try:
            apply(tree, edits)
        except ValueError as exc:
            return Result(name, "ERROR", time.perf_counter() - start, str(exc))
        env = dict(
            os.environ, PYTHONPATH=str(tree / "src"), OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1")
        )
        cmd = [python, "-m", "pytest", *pytest_args, *tests]
        try:
            proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return Result(name, "killed (timeout)", time.perf_counter() - start, "")
    tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-3:])
    statuses = {0: "SURVIVED", 1: "killed"} if edits else {0: "passed", 1: "FAILED"}
    return Result(name, statuses.get(proc.returncode, "ERROR"), time.perf_counter() - start, tail)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", action="store_true", help="print the mutations and exit")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these mutations")
    parser.add_argument("--no-baseline", action="store_true", help="skip the unmutated runs")
    parser.add_argument("--python", default=sys.executable, help="interpreter that runs pytest")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per run (default 900)")
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root (default: this one)")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTATIONS if not args.only or m.name in args.only]
    unknown = set(args.only or ()) - {m.name for m in MUTATIONS}
    if unknown:
        parser.error(f"unknown mutation(s) {sorted(unknown)}; --list shows them")
    if args.list:
        for m in chosen:
            files = sorted({e.file for e in m.edits})
            print(f"{m.name:<32} {', '.join(files)}  ->  {' '.join(m.tests)}")
        return 0
    failed = False
    if not args.no_baseline:
        for tests in dict.fromkeys(m.tests for m in chosen):
            r = run(args.root, "baseline", (), tests, args.python, PYTEST_ARGS, args.timeout)
            print(f"{r.status:<16} {'baseline':<32} {' '.join(tests)} ({r.seconds:.0f} s)", flush=True)
            if r.status != "passed":
                print(f"    {r.tail}", flush=True)
                failed = True
        if failed:
            print("a selection fails without any mutation: fix the suite first", file=sys.stderr)
            return 1
    for m in chosen:
        r = run(args.root, m.name, m.edits, m.tests, args.python, PYTEST_ARGS, args.timeout)
        print(f"{r.status:<16} {m.name:<32} {' '.join(m.tests)} ({r.seconds:.0f} s)", flush=True)
        if not r.status.startswith("killed"):
            failed = True
            if r.tail:
                print(f"    {r.tail}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
