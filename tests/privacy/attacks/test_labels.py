"""Label recovery from the last layer: iDLG for one sample, the count estimator for batches."""

from __future__ import annotations

import torch
from torch import nn

from fedwave.privacy.attacks import Observation
from fedwave.privacy.attacks.labels import assign_labels, estimate_counts, estimate_labels, idlg_label
from fedwave.privacy.attacks.simulate import LocalSchedule

from .conftest import make_model, observe


def test_idlg_recovers_every_single_label_on_untrained_lenet(digits) -> None:
    model = make_model("lenet", digits)
    hits = 0
    for i in range(30):
        seen = observe(model, digits, [i])
        hits += idlg_label(seen.obs, seen.server, LocalSchedule("gradient", 1)) == int(digits.y_train[i])
    assert hits == 30


def test_idlg_reads_a_multi_step_update_with_the_opposite_sign(digits) -> None:
    model = make_model("lenet", digits)
    seen = observe(model, digits, [3], user_type="local_update", num_local_updates=3, local_learning_rate=0.1)
    sched = LocalSchedule("update", 1, lr=0.1, batches=[torch.tensor([0])] * 3)
    assert idlg_label(seen.obs, seen.server, sched) == int(digits.y_train[3])
    # read without the sign flip (as if it were a gradient), the update points at another class
    as_gradient = Observation(seen.obs.gradients, "gradient", seen.obs.metadata)
    assert idlg_label(as_gradient, seen.server, LocalSchedule("gradient", 1)) != int(digits.y_train[3])


def test_count_estimator_recovers_label_counts_with_repeats(digits) -> None:
    model = make_model("lenet", digits)
    y = digits.y_train
    pick = [int(i) for i in torch.nonzero(y == 2).flatten()[:3]] + [int(torch.nonzero(y == 7)[0])]
    seen = observe(model, digits, pick)
    counts = estimate_counts(seen.obs, seen.server, LocalSchedule("gradient", 4))
    assert counts[2] == 3 and counts[7] == 1 and int(counts.sum()) == 4
    labels = estimate_labels(seen.obs, seen.server, LocalSchedule("gradient", 4))
    assert labels.tolist() == [2, 2, 2, 7]


def test_count_estimator_without_last_layer_bias(digits) -> None:
    model = make_model("lenet", digits)
    fc = model.classifier
    model.classifier = nn.Linear(fc.in_features, fc.out_features, bias=False)
    with torch.no_grad():
        model.classifier.weight.copy_(fc.weight)
    y = digits.y_train
    pick = [int(torch.nonzero(y == c)[0]) for c in (1, 4, 4, 8)]
    seen = observe(model, digits, pick)
    labels = estimate_labels(seen.obs, seen.server, LocalSchedule("gradient", 4))
    assert labels.tolist() == [1, 4, 4, 8]


def test_assign_labels_gives_each_true_sample_its_own_label(digits) -> None:
    model = make_model("mlp", digits)
    pick = [0, 1, 2, 3]
    seen = observe(model, digits, pick)
    sched = LocalSchedule("gradient", 4)
    shuffled = seen.true["labels"][torch.tensor([2, 0, 3, 1])]
    got = assign_labels(seen.obs, seen.server, sched, seen.true["data"], shuffled)
    assert got.tolist() == seen.true["labels"].tolist()
