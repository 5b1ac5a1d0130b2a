"""Many UEs' local SGD at once: parameters stacked along a UE axis, a vmapped forward, one backward.

:func:`train_multistep_batched` reproduces :class:`~fedwave.users.multi.UserMultiStep` for a group of
UEs that start from the same server payload: every UE keeps its own batch order (drawn from its own
query generator exactly as the sequential user draws it), its own running BatchNorm statistics (buffers
are stacked too, and BatchNorm's in-place running-statistics update acts on the UE's slice under
``vmap``) and its own global-norm gradient clipping (``per_example_clipping``). At local step t the UEs
that have a step t are grouped by their batch size, and each group takes one vmapped step: UEs with
different numbers of steps or a shorter last batch need no padding or masking, so batch statistics are
never polluted by padded samples.

The forward pass is ``torch.func.vmap`` of ``functional_call`` over the UE axis; the gradients come from
one ordinary backward pass of the sum of the UEs' losses (UE k's loss depends on UE k's slice only, so
each slice of the gradient is that UE's own gradient). ``torch.func.grad`` is not used: it imports
``torch._dynamo`` (seconds of start-up).

What is identical to the sequential user: the samples of every step, the order of the steps, the SGD
update rule (``p <- p - lr g``, :class:`fedwave.engine.optim.SGD`), the shared metadata. What differs is
float rounding only: a vmapped (batched) matrix product may sum in another order than one UE's. The
tests bound the difference (:data:`TOLERANCE`). Results are bit-identical run to run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, vmap

from fedwave.users.base import Payload, SharedData
from fedwave.users.multi import UserMultiStep

# Largest difference seen between batched and sequential final models (tests/engine/test_engine_batched.py,
# every zoo model, with and without clipping): 1.2e-7 (resnet), 1.5e-8 to 3e-8 for the others. The tests
# allow TOLERANCE on every parameter and buffer.
TOLERANCE = 1e-5


def unbatchable_reason(user: object, model: nn.Module) -> str | None:
    """Why ``user`` cannot train in a vmapped group (None when it can)."""
    if type(user) is not UserMultiStep:
        return f"{type(user).__name__} users (only multi-step SGD users are vectorised)"
    loss = user.loss_fn
    plain = nn.CrossEntropyLoss()
    if (
        type(loss) is not nn.CrossEntropyLoss
        or any(
            getattr(loss, k) != getattr(plain, k) for k in ("reduction", "label_smoothing", "ignore_index")
        )
        or loss.weight is not None
    ):
        return "a loss other than plain mean cross-entropy"
    dp = user.cfg.local_diff_privacy
    if dp.input_noise > 0 or dp.gradient_noise > 0:
        return "local input/gradient noise (drawn per UE in the sequential order)"
    if any(isinstance(m, nn.modules.dropout._DropoutNd) for m in model.modules()):
        return "random layers (dropout masks come from each UE's seeded global RNG)"
    if any(not p.requires_grad for p in model.parameters()):
        return "frozen parameters"
    return None


def _mean_cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per UE (dim 0) mean cross-entropy of logits ``(U, b, C)`` against labels ``(U, b)``.

    Outside ``vmap``: a vmapped ``nll_loss`` runs through torch's decompositions, whose import costs ~1 s.
    """
    u, b, c = logits.shape
    per_sample = nn.functional.cross_entropy(logits.reshape(u * b, c), y.reshape(u * b), reduction="none")
    return per_sample.reshape(u, b).mean(dim=1)


def _stack(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.stack([t.detach() for t in tensors])


def _clip_(grads: dict[str, torch.Tensor], max_norm: float) -> None:
    """Per UE (dim 0), scale the gradients so their global L2 norm is at most ``max_norm`` (in place)."""
    per_tensor = [torch.linalg.vector_norm(g.float().reshape(g.shape[0], -1), dim=1) for g in grads.values()]
    norm = torch.linalg.vector_norm(torch.stack(per_tensor, dim=1), dim=1).double()
    factor = torch.clamp(max_norm / (norm + 1e-12), max=1.0).float()
    for g in grads.values():
        g.mul_(factor.reshape(-1, *([1] * (g.dim() - 1))))


def train_multistep_batched(
    users: Sequence[UserMultiStep], payload: Payload, generators: Sequence[torch.Generator]
) -> list[SharedData]:
    """The shared data of each user's ``compute_local_updates(payload, rng=generator)``, trained together.

    All users must share one working model (the template of the functional calls) and pass
    :func:`unbatchable_reason`. Each user's query counter advances by one, as in a sequential query.
    """
    template = users[0].model
    users[0]._synchronize(payload)  # server parameters and train/eval mode into the template
    names = [n for n, _ in template.named_parameters()]
    start = [p.detach().clone() for p in template.parameters()]
    persistent = _persistent_names(template)
    batches = []
    for user, gen in zip(users, generators):
        user.counted_queries += 1
        batches.append(user.batches(user.num_data_points, gen))
    count = len(users)
    params = {n: s.unsqueeze(0).repeat(count, *([1] * s.dim())) for n, s in zip(names, start)}
    buffers = _initial_buffers(users, payload, template, persistent)
    lr = users[0].cfg.local_learning_rate
    clip = users[0].clip_value

    def forward(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = functional_call(template, (p, b), (x,))
        return out

    logits_of = vmap(forward)
    for t in range(max(len(b) for b in batches)):
        groups: dict[int, list[int]] = {}
        for k, steps in enumerate(batches):
            if t < len(steps):
                groups.setdefault(int(steps[t].numel()), []).append(k)
        for _, members in sorted(groups.items()):
            x = torch.stack([users[k].inputs[batches[k][t]] for k in members])
            y = torch.stack([users[k].labels[batches[k][t]] for k in members])
            whole = len(members) == count
            index = torch.tensor(members)
            p_g = {n: (v if whole else v[index]).detach().requires_grad_() for n, v in params.items()}
            b_g = buffers if whole else {n: v[index] for n, v in buffers.items()}
            logits = logits_of(p_g, b_g, x)  # BatchNorm updates b_g's running statistics in place
            losses = _mean_cross_entropy(logits, y)
            grads = dict(zip(names, torch.autograd.grad(losses.sum(), [p_g[n] for n in names])))
            if clip > 0:
                _clip_(grads, clip)
            with torch.no_grad():
                for n in names:
                    p_g[n].add_(grads[n], alpha=-lr)
            if not whole:
                for n in names:
                    params[n][index] = p_g[n].detach()
                for n in buffers:
                    buffers[n][index] = b_g[n]
    return [
        _shared(user, k, payload, params, names, start, buffers, persistent, steps)
        for k, (user, steps) in enumerate(zip(users, batches))
    ]


def _persistent_names(model: nn.Module) -> list[str]:
    """Names of the persistent buffers, in ``fedwave.users.tensors.persistent_buffers`` order."""
    out = []
    for prefix, module in model.named_modules():
        for name, buf in module.named_buffers(recurse=False):
            if buf is not None and name not in module._non_persistent_buffers_set:
                out.append(f"{prefix}.{name}" if prefix else name)
    return out


def _initial_buffers(
    users: Sequence[UserMultiStep], payload: Payload, template: nn.Module, persistent: list[str]
) -> dict[str, torch.Tensor]:
    """Every UE's starting buffers, stacked: the payload's, or each user's ``initial_buffers``."""
    out = {
        n: b.detach().unsqueeze(0).repeat(len(users), *([1] * b.dim())) for n, b in template.named_buffers()
    }
    sent = payload.get("buffers")
    for i, name in enumerate(persistent):
        source = [sent[i]] * len(users) if sent is not None else [u.initial_buffers[i] for u in users]
        out[name] = _stack(source).to(out[name].dtype)
    return out


def _shared(
    user: UserMultiStep,
    k: int,
    payload: Payload,
    params: dict[str, torch.Tensor],
    names: list[str],
    start: list[torch.Tensor],
    buffers: dict[str, torch.Tensor],
    persistent: list[str],
    steps: list[torch.Tensor],
) -> SharedData:
    """What ``UserMultiStep.compute_local_updates`` shares, for UE ``k`` of the group."""
    y = user.labels
    hyper: dict[str, Any] | None = None
    if user.cfg.provide_local_hyperparams is not False:
        hyper = {
            "lr": user.cfg.local_learning_rate,
            "steps": len(steps),
            "data_per_step": user.cfg.num_data_per_local_update_step,
            "labels": [torch.sort(y[idx].detach().cpu())[0] for idx in steps],
        }
    shared_buffers = None
    mode = (payload.get("metadata") or {}).get("buffers_mode", "eval")
    if user.cfg.provide_buffers and (payload.get("buffers") is None or mode == "train"):
        shared_buffers = [buffers[n][k].clone() for n in persistent]
    return {
        "gradients": [params[n][k] - s for n, s in zip(names, start)],
        "buffers": shared_buffers,
        "metadata": user._metadata(y, int(y.shape[0]), hyper),
    }
