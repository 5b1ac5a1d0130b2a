"""Selection rules (``fl.selection``): each rule's defining property over rounds, plug-ins, refusals."""

from __future__ import annotations

from collections import Counter

import pytest

import fedwave
from fedwave.config import load_config
from fedwave.errors import ConfigError
from fedwave.fl.run import build_simulation, run
from fedwave.fl.selection import SelectionContext, get_selection
from fedwave.plugins import unregister
from fedwave.rng import numpy_generator

SMALL = ["data.max_train=300", "fl.num_ues=6", "model.name=mlp", "fl.clients_per_round=2"]


def _picked(args: list[str]) -> list[list[int]]:
    result = run(load_config(None, [*SMALL, *args]))
    rounds: dict[int, list[int]] = {}
    for e in result.events:
        rounds.setdefault(e.round, []).append(e.ue)
    return [sorted(rounds[r]) for r in sorted(rounds)]


def test_round_robin_cycles_through_the_ids_in_order() -> None:
    assert _picked(["fl.rounds=4", "fl.selection=round_robin"]) == [[0, 1], [2, 3], [4, 5], [0, 1]]


def test_age_takes_every_ue_once_before_any_twice_and_breaks_ties_by_seed() -> None:
    picks = _picked(["fl.rounds=6", "fl.selection=age"])
    first, second = picks[:3], picks[3:]
    assert sorted(u for p in first for u in p) == list(range(6))  # each UE once in rounds 0-2
    assert sorted(u for p in second for u in p) == list(range(6))  # and once more in rounds 3-5
    assert first != [[0, 1], [2, 3], [4, 5]]  # ties at random, not by id (seed 0)
    assert _picked(["fl.rounds=6", "fl.selection=age"]) == picks  # the same seed, the same choice
    assert _picked(["fl.rounds=6", "fl.selection=age", "seed=1"]) != picks


def test_random_takes_ues_uniformly_and_matches_the_driver() -> None:
    rule = get_selection("random")
    counts: Counter[int] = Counter()
    for call in range(3000):
        ctx = SelectionContext(0, list(range(6)), 2, numpy_generator(0, "t", call), {}, {})
        picked = rule(ctx)
        assert len(set(picked)) == 2
        counts.update(picked)
    # each UE ~ Binomial(3000, 1/3): mean 1000, sd 25.8; 4 sd either side
    assert all(abs(counts[u] - 1000) <= 4 * 25.8 for u in range(6))
    picks = _picked(["fl.rounds=3"])  # the default rule is this one, drawn from the run's streams
    sim = build_simulation(load_config(None, [*SMALL, "fl.rounds=3"]))
    assert [sim.driver.select(r, range(6), 2) for r in range(3)] == picks


def test_a_rule_by_decorator_and_by_import_path(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    @fedwave.register_selection("lowest")
    def lowest(ctx: SelectionContext) -> list[int]:
        return ctx.available[: ctx.count]

    try:
        assert _picked(["fl.rounds=2", "fl.selection=lowest"]) == [[0, 1], [0, 1]]
    finally:
        unregister("selections", "lowest")
    (tmp_path / "mysched.py").write_text(
        "def highest(ctx):\n    return ctx.available[-ctx.count:]\ndef broken(ctx):\n    return [99]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert _picked(["fl.rounds=2", "fl.selection=mysched:highest"]) == [[4, 5], [4, 5]]
    with pytest.raises(ConfigError, match=r"selection rule 'mysched:broken' in round 0 returned \[99\]"):
        _picked(["fl.rounds=1", "fl.selection=mysched:broken"])


def test_unknown_rules_and_poisson_with_a_rule_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"fl\.selection.*unknown selection rule 'best'"):
        load_config(None, ["fl.selection=best"])
    with pytest.raises(ConfigError, match=r"fl\.sampling 'poisson'.*fl\.selection 'age'"):
        load_config(None, ["fl.sampling=poisson", "fl.fraction=0.5", "fl.selection=age"])


def test_the_selection_history_travels_with_the_checkpoint() -> None:
    cfg = load_config(None, [*SMALL, "fl.rounds=3", "fl.selection=round_robin"])
    sim = build_simulation(cfg)
    sim.run_rounds(1)
    state = sim.driver.state_dict()
    assert state["last_selected"] == {0: 0, 1: 0}
    again = build_simulation(cfg)
    again.driver.load_state_dict(state)
    assert again.driver.select(1, range(6), 2) == [2, 3]  # not [0, 1]: the history was restored
