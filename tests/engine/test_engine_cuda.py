"""Training on a CUDA GPU (``engine.device=cuda``): skipped where torch sees no GPU (CI has none).

``scripts/gpu_check.py`` runs the wider set of cases on a machine with a GPU. These tests hold the
contract there: a run completes with the UEs' models on the GPU, two runs give bit-identical models and
records, and the model stays within :data:`fedwave.engine.batched.TOLERANCE` of the CPU run's (other
kernels, so not equal; IEEE float32 on both, :mod:`fedwave.engine.device`).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from fedwave.config import load_config
from fedwave.engine.batched import TOLERANCE, stack_limit
from fedwave.engine.device import current_settings, restore_settings
from fedwave.fl.run import build_simulation, model_digest

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(autouse=True)
def _restore_settings() -> Iterator[None]:
    """A CUDA run changes process-wide settings (fedwave.engine.device); later tests get them back."""
    saved = current_settings()
    yield
    restore_settings(saved)


BASE = ["fl.num_ues=10", "fl.fraction=0.5", "fl.rounds=2"]
# resnet on 8x8 digits ends in 1x1 BatchNorm maps whose batch variance can be ~0, where a rounding
# difference is amplified up to 1/sqrt(eps) per step (tests/engine/test_engine_batched.py says more):
# it is compared on the short run of that test, whose UEs take no 1-sample batch.
RESNET = [
    "model.name=resnet",
    "data.max_train=300",
    "data.partition=dirichlet",
    "fl.num_ues=5",
    "fl.fraction=1.0",
    "fl.batch_size=8",
    "fl.local_epochs=1",
    "fl.lr=0.05",
    "fl.rounds=1",
]

CASES = {
    "convnet sequential": [*BASE, "engine.executor=sequential"],
    "2nn batched ef(topk)": [
        *BASE,
        "model.name=2nn",
        "engine.executor=batched",
        "codec.uplink=ef(topk:0.01)",
    ],
    "resnet sequential": [*RESNET, "engine.executor=sequential"],
    "resnet batched": [*RESNET, "engine.executor=batched"],
    "cnn batched": [*BASE, "model.name=cnn", "engine.executor=batched"],
    "2nn batched dp sample": [
        *BASE,
        "model.name=2nn",
        "engine.executor=batched",
        "dp.level=sample",
        "dp.noise_multiplier=1.0",
    ],
}


def _run(
    overrides: list[str], device: str
) -> tuple[str, list[dict[str, object]], dict[str, torch.Tensor], set[str]]:
    cfg = load_config(None, [*overrides, f"engine.device={device}"])
    sim = build_simulation(cfg)
    trained_on = {p.device.type for p in sim.driver.users[0].model.parameters()}
    model = sim.driver.bs.model
    start = [p.detach().clone() for p in model.parameters()]
    sim.run_rounds(cfg.fl.rounds)
    moved = max(float((p.detach() - s).abs().max()) for p, s in zip(model.parameters(), start))
    assert moved > 1e-3, "training did not move the model: the comparison would prove nothing"
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return model_digest(model), [r.as_dict() for r in sim.driver.records], state, trained_on


def test_a_round_of_cnn_ues_trains_stacked_on_the_gpu() -> None:
    cfg = load_config(None, [*CASES["cnn batched"], "engine.device=cuda"])
    sim = build_simulation(cfg)
    assert stack_limit(sim.driver.users[0].model) >= cfg.fl.num_ues  # on the CPU: 1 (the cache budget)


@pytest.mark.parametrize("case", list(CASES))
def test_cuda_run_is_reproducible_and_close_to_the_cpu_run(case: str) -> None:
    digest, records, state, trained_on = _run(CASES[case], "cuda")
    again, records_again, _, _ = _run(CASES[case], "cuda")
    assert trained_on == {"cuda"}
    assert digest == again and records == records_again
    _, cpu_records, cpu_state, _ = _run(CASES[case], "cpu")
    diffs = {
        k: float((v.double() - cpu_state[k].double()).abs().max())
        for k, v in state.items()
        if v.is_floating_point()
    }
    name, worst = max(diffs.items(), key=lambda kv: kv[1])
    print(f"{case}: largest difference from the CPU's model {worst:.3g} ({name})")
    # the batched executor's bound against the sequential one: the same arithmetic in another order. An
    # H200 (torch 2.11) gave 1.5e-8 to 3.0e-8, 1.2e-7 for resnet; 1e-3 to 1e-2 with TF32 convolutions.
    assert worst <= TOLERANCE, f"{case}: the GPU's model differs from the CPU's by {worst:.3g} in {name}"
    # same radio: the clock never depends on the device
    assert [r["t_end"] for r in records] == [r["t_end"] for r in cpu_records]
