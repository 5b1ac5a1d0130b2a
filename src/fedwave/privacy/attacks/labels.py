"""Labels from the last layer's update (iDLG and a count-based estimator for batches).

For cross-entropy over softmax, the gradient of the mean loss with respect to the logits of sample n is
``p_n - onehot(y_n)``. The last layer's bias gradient is therefore ``g_c = mean_n (p_nc - [y_n = c])`` and
its weight-gradient row ``c`` is ``mean_n (p_nc - [y_n = c]) h_n`` (``h_n`` the layer's input).

- One sample (iDLG, Zhao et al. 2020): only the true class has ``p - 1 < 0``; with non-negative ``h``
  (sigmoid/ReLU features) the true row is the one with a negative sum. The label is ``argmin g_c`` (bias)
  or ``argmin_c sum_j dW_cj`` (no bias).
- Batches: the *bias-gradient count estimator*. From ``g_c = pbar_c - k_c / N`` the count of class c is
  ``k_c = N (pbar_c - g_c)``; ``pbar`` is estimated by the model's softmax at the dataset-mean input
  (all zeros in normalised coordinates). Every class with ``g_c < 0`` gets at least one sample (the iDLG
  sign rule), the remaining samples go by largest remainder of ``k_c``. Without a bias, ``g_c`` is replaced
  by the row sum of ``dW_c`` divided by the L1 norm of the last layer's input at the mean input (the
  row-sum form of Wainakh et al. 2022's label leakage estimator, with this white-box impact estimate).

Multi-step updates are turned into a pseudo-gradient ``-(p_local - p_server) / (lr * steps)`` first.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call

from fedwave.privacy.attacks.errors import AttackNotApplicable
from fedwave.privacy.attacks.observation import Observation, ServerView
from fedwave.privacy.attacks.simulate import LocalSchedule


def last_layer(model: nn.Module, num_classes: int) -> tuple[nn.Linear, int, int | None]:
    """The last ``nn.Linear`` producing ``num_classes`` outputs, its weight and bias parameter indices."""
    index = {id(p): i for i, p in enumerate(model.parameters())}
    found = [m for m in model.modules() if isinstance(m, nn.Linear) and m.out_features == num_classes]
    if not found:
        raise AttackNotApplicable(
            f"label recovery needs a final fully connected layer with {num_classes} outputs; "
            f"{type(model).__name__} has none"
        )
    layer = found[-1]
    bias = index[id(layer.bias)] if layer.bias is not None else None
    return layer, index[id(layer.weight)], bias


def pseudo_gradient(obs: Observation, schedule: LocalSchedule) -> list[torch.Tensor]:
    """The received tensors as a gradient of the mean loss (an update is divided by ``-lr * steps``)."""
    if obs.kind == "gradient":
        return list(obs.gradients)
    scale = -1.0 / (schedule.lr * schedule.steps) if schedule.lr > 0 else -1.0
    return [g * scale for g in obs.gradients]


def last_layer_signal(obs: Observation, server: ServerView, schedule: LocalSchedule) -> torch.Tensor:
    """Per class, the bias gradient ``g_c`` (or the weight-row sum when the layer has no bias)."""
    _, w_idx, b_idx = last_layer(server.model, server.num_classes)
    grads = pseudo_gradient(obs, schedule)
    if b_idx is not None:
        return grads[b_idx].double()
    return grads[w_idx].double().sum(dim=1)


def idlg_label(obs: Observation, server: ServerView, schedule: LocalSchedule) -> int:
    """The label of a single sample: the class whose last-layer gradient is most negative (iDLG)."""
    return int(torch.argmin(last_layer_signal(obs, server, schedule)).item())


def _mean_input_stats(model: nn.Module, server: ServerView) -> tuple[torch.Tensor, float]:
    """Softmax and last-layer input L1 norm of the model at the dataset-mean input."""
    layer, _, _ = last_layer(model, server.num_classes)
    seen: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _m, inp, _out: seen.append(inp[0].detach()))
    names = [n for n, _ in model.named_parameters()]
    params = dict(zip(names, server.parameters))
    was_training = model.training
    model.eval()  # one sample: batch statistics would be degenerate
    try:
        with torch.no_grad():
            logits = functional_call(model, params, (torch.zeros(1, *server.input_shape),))
    finally:
        handle.remove()
        model.train(was_training)
    return torch.softmax(logits.double(), dim=1)[0], float(seen[0].abs().sum()) if seen else 1.0


def estimate_counts(obs: Observation, server: ServerView, schedule: LocalSchedule) -> torch.Tensor:
    """Per-class sample counts by the bias-gradient count estimator (module docstring); sums to N."""
    n = schedule.num_data
    g = last_layer_signal(obs, server, schedule)
    p_hat, h_norm = _mean_input_stats(server.model, server)
    _, _, b_idx = last_layer(server.model, server.num_classes)
    if b_idx is None:
        g = g / max(h_norm, 1e-12)
    real = n * (p_hat - g)
    counts = torch.zeros_like(real, dtype=torch.long)
    negative = torch.nonzero(g < 0).flatten()
    if negative.numel() > n:  # noise: keep the n most negative
        negative = torch.argsort(g)[:n]
    counts[negative] = 1
    while int(counts.sum()) < n:
        counts[int(torch.argmax(real - counts.double()).item())] += 1
    return counts


def estimate_labels(obs: Observation, server: ServerView, schedule: LocalSchedule) -> torch.Tensor:
    """Sorted labels of the batch: iDLG for one sample, the count estimator for more."""
    if schedule.num_data == 1:
        return torch.tensor([idlg_label(obs, server, schedule)], dtype=torch.long)
    counts = estimate_counts(obs, server, schedule)
    return torch.repeat_interleave(torch.arange(counts.numel()), counts)


def assign_labels(
    obs: Observation, server: ServerView, schedule: LocalSchedule, x: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """Give the label multiset ``labels`` to the reconstructed samples ``x`` (one label each).

    The last layer's weight gradient is ``G = mean_n (p_n - e_{y_n}) h_n^T``, so
    ``M = mean_n p_n h_n^T - G`` has row c equal to the mean of ``h_n`` over the samples of class c. Sample n
    gets the label whose row is most aligned (cosine) with its ``h_n``, by an optimal assignment
    (``scipy.optimize.linear_sum_assignment``) over the multiset.
    """
    from scipy.optimize import linear_sum_assignment

    model = server.model
    layer, w_idx, _ = last_layer(model, server.num_classes)
    seen: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _m, inp, _out: seen.append(inp[0].detach()))
    params = dict(zip([n for n, _ in model.named_parameters()], server.parameters))
    try:
        with torch.no_grad():
            logits = functional_call(model, params, (x,))
    finally:
        handle.remove()
    h = seen[0].double().reshape(x.shape[0], -1)
    p = torch.softmax(logits.double(), dim=1)
    m = p.T @ h / x.shape[0] - pseudo_gradient(obs, schedule)[w_idx].double()
    rows = m[labels]  # (N, F): one row per label of the multiset
    cos = (h @ rows.T) / (h.norm(dim=1, keepdim=True) * rows.norm(dim=1)[None, :] + 1e-12)
    samples, slots = linear_sum_assignment((-cos).numpy())
    out = torch.empty_like(labels)
    out[torch.as_tensor(samples)] = labels[torch.as_tensor(slots)]
    return out
