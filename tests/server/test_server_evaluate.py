"""The BS's evaluation in batches equals the whole split's accuracy and mean loss, formed in one pass."""

from __future__ import annotations

import torch
from torch import nn

from fedwave.server.evaluate import evaluate


def test_batches_cover_every_sample_once() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    x = torch.randn(301, 1, 8, 8)  # not a multiple of the default batch size: the last batch is short
    y = torch.randint(0, 10, (301,))
    with torch.no_grad():
        logits = model(x)
    want_acc = float((logits.argmax(1) == y).double().mean())
    want_loss = float(nn.functional.cross_entropy(logits.double(), y))
    model.train()
    for batch in (None, 1, 7, 301, 1000):
        got = evaluate(model, x, y) if batch is None else evaluate(model, x, y, batch_size=batch)
        assert got.num_samples == 301
        assert got.accuracy == want_acc
        assert abs(got.loss - want_loss) <= 1e-6 * want_loss
        assert model.training  # the mode is put back
