"""Measured training FLOPs, device profiles, compute time and energy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedwave.devices import radio_energy_j, sample_profiles, training_flops_per_sample
from fedwave.sim import Clock, WirelessConfig
from fedwave.sim.config import DevicesConfig


def test_linear_layer_flops_follow_flopcounter_convention() -> None:
    # Forward 2*in*out (a multiply-add is 2 FLOPs) + weight gradient 2*in*out; the input is data, so
    # no input gradient is computed: 4*in*out per sample. Bias adds and the loss are not counted.
    assert training_flops_per_sample(torch.nn.Linear(30, 7), (30,), 7) == 4 * 30 * 7
    # A hidden layer's input needs a gradient: its backward costs 2 * 2*in*out, i.e. 6*in*out in all.
    net = torch.nn.Sequential(torch.nn.Linear(30, 16), torch.nn.ReLU(), torch.nn.Linear(16, 5))
    assert training_flops_per_sample(net, (30,), 5) == 4 * 30 * 16 + 6 * 16 * 5


def test_flops_do_not_depend_on_batch_and_leave_model_alone() -> None:
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.Flatten(), torch.nn.Linear(256, 10)
    )
    before = [p.detach().clone() for p in net.parameters()]
    state = torch.random.get_rng_state()
    a = training_flops_per_sample(net, (1, 8, 8), 10, batch_size=2)
    b = training_flops_per_sample(net, (1, 8, 8), 10, batch_size=5)
    assert a == b > 0
    assert all(torch.equal(x, y) for x, y in zip(before, net.parameters()))
    assert all(p.grad is None for p in net.parameters())
    assert torch.equal(state, torch.random.get_rng_state())
    with pytest.raises(ValueError, match="expected"):
        training_flops_per_sample(net, (1, 8, 8), 3)


def test_flops_and_cycles_models_by_hand() -> None:
    flops = sample_profiles(
        DevicesConfig(flops_per_s=2e9, joules_per_flop=5e-11), 1, np.random.default_rng(0)
    )[0]
    assert flops.compute_time_s(1e6, 100) == pytest.approx(1e6 * 100 / 2e9)
    assert flops.compute_energy_j(1e6, 100) == pytest.approx(5e-11 * 1e8)
    cyc_cfg = DevicesConfig(model="cycles", cpu_hz=1.5e9, cycles_per_sample=2e6, kappa=1e-28)
    cyc = sample_profiles(cyc_cfg, 1, np.random.default_rng(0))[0]
    assert cyc.compute_time_s(123.0, 50) == pytest.approx(2e6 * 50 / 1.5e9)
    assert cyc.compute_energy_j(123.0, 50) == pytest.approx(1e-28 * 2e6 * 50 * 1.5e9**2)
    derived = sample_profiles(
        DevicesConfig(model="cycles", flops_per_cycle=4.0), 1, np.random.default_rng(0)
    )[0]
    assert derived.compute_time_s(8e6, 10) == pytest.approx(8e6 / 4 * 10 / 1e9)
    assert radio_energy_j(0.2, 3.0) == pytest.approx(0.6)


def test_distribution_and_classes_profiles() -> None:
    cfg = DevicesConfig(profile="distribution", distribution={"kind": "uniform", "low": 1e8, "high": 3e8})
    prof = sample_profiles(cfg, 500, np.random.default_rng(4))
    speeds = np.array([p.flops_per_s for p in prof])
    assert speeds.min() >= 1e8 and speeds.max() <= 3e8 and len(set(speeds)) == 500
    ln = sample_profiles(DevicesConfig(profile="distribution"), 4000, np.random.default_rng(4))
    assert np.median([p.flops_per_s for p in ln]) == pytest.approx(1e9, rel=0.05)
    classes = DevicesConfig(
        profile="classes",
        classes=[
            {"name": "phone", "share": 0.7, "flops_per_s": 1e9},
            {"name": "iot", "share": 0.3, "flops_per_s": 1e8, "joules_per_flop": 1e-9},
        ],
    )
    prof = sample_profiles(classes, 10, np.random.default_rng(0))
    names = [p.name for p in prof]
    assert names.count("phone") == 7 and names.count("iot") == 3
    iot = next(p for p in prof if p.name == "iot")
    assert iot.flops_per_s == 1e8 and iot.joules_per_flop == 1e-9


def test_clock_uses_the_profiles_and_compute_energy(fake_driver) -> None:
    cfg = WirelessConfig.model_validate({"cell": {"positions_m": [[100.0, 0.0]], "fading": "none"}})
    drv = fake_driver(samples=72)
    Clock(cfg, 1, 7.35e6, seed=0).run(drv, 1, 1)
    e = drv.events[0][0]
    assert e.t_compute_end - e.t_compute_start == pytest.approx(72 * 7.35e6 / 1e9)
    assert e.energy_compute_j == pytest.approx(1e-10 * 72 * 7.35e6)
    assert e.samples == 72 and drv.records[0].samples == 72
