"""Codec state spilled to disk (``engine.codec_states_in_memory``) gives the in-memory run bit for bit."""

from __future__ import annotations

import torch

from fedwave.config import load_config
from fedwave.engine.spill import SpilledStates
from fedwave.fl.checkpoint import load_checkpoint, save_checkpoint
from fedwave.fl.run import build_simulation

RUN = [
    "data.max_train=300",
    "fl.num_ues=6",
    "fl.fraction=0.5",
    "fl.rounds=4",
    "model.name=mlp",
    "codec=ef(topk:0.05)",
]


def _run(extra: list[str]) -> tuple[list[dict[str, object]], list[torch.Tensor], object]:
    sim = build_simulation(load_config(None, [*RUN, *extra]))
    sim.run_rounds(4)
    model = [t.clone() for t in sim.driver.bs.model.state_dict().values()]
    return [r.as_dict() for r in sim.driver.records], model, sim


def test_spilled_residuals_give_identical_results() -> None:
    ref, ref_model, ref_sim = _run([])
    got, got_model, sim = _run(["engine.codec_states_in_memory=1"])
    states = sim.driver.codec_state  # type: ignore[attr-defined]
    assert isinstance(states, SpilledStates) and len(states._cold) >= 2  # really spilled
    assert got == ref
    assert all(torch.equal(a, b) for a, b in zip(got_model, ref_model))
    # residuals are non-zero (error feedback at work), and equal to the in-memory ones
    plain = ref_sim.driver.codec_state  # type: ignore[attr-defined]
    assert sorted(states) == sorted(plain)
    some = False
    for ue in plain:
        for key, value in plain[ue].items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(value, states[ue][key])
                some = some or bool(value.abs().sum() > 0)
    assert some


def test_checkpoint_of_spilled_states_restores_them() -> None:
    _, _, sim = _run(["engine.codec_states_in_memory=2"])
    blob = save_checkpoint(sim, t_now=1.0, next_round=4)  # type: ignore[arg-type]
    fresh = build_simulation(load_config(None, [*RUN, "engine.codec_states_in_memory=2"]))
    load_checkpoint(fresh, blob)
    a, b = sim.driver.codec_state, fresh.driver.codec_state  # type: ignore[attr-defined]
    assert sorted(a) == sorted(b) and len(a) >= 3
    for ue in sorted(a):
        assert a[ue].keys() == b[ue].keys()
        for key in a[ue]:
            if isinstance(a[ue][key], torch.Tensor):
                assert torch.equal(a[ue][key], b[ue][key])


def test_mapping_semantics() -> None:
    s = SpilledStates(1)
    s[3] = {"residual.0": torch.ones(2)}
    s[1] = {"residual.0": torch.zeros(2)}
    assert list(s) == [1, 3] and len(s) == 2 and 3 in s
    s[3]["residual.0"].add_(1.0)  # loads 3 back, spills 1; the mutation stays with the object
    assert torch.equal(s[1]["residual.0"], torch.zeros(2))  # spills 3 with its mutation
    assert torch.equal(s[3]["residual.0"], torch.full((2,), 2.0))
    del s[1]
    assert list(s) == [3]
