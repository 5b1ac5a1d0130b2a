"""Many UEs' local SGD at once: parameters stacked along a UE axis, a vmapped forward, one backward.

:func:`train_multistep_batched` reproduces :class:`~fedwave.users.multi.UserMultiStep` for a group of
UEs that start from the same server payload: every UE keeps its own batch order (drawn from its own
query generator exactly as the sequential user draws it), its own running BatchNorm statistics (buffers
are stacked too, and BatchNorm's in-place running-statistics update acts on the UE's slice under
``vmap``) and its own global-norm gradient clipping (``per_example_clipping``).

At local step t, when every UE has a batch of the same size, all take one vmapped step. Otherwise, for a
model built of per-sample layers only (:data:`fedwave.engine.batches.PER_SAMPLE`: no BatchNorm), every
UE still takes one step: batches are zero-padded to the longest and each UE's loss weighs its b real
samples 1/b and the padding 0 (a UE without a step t has weight 0 throughout: zero gradient, parameters
unchanged). A model with batch statistics is grouped by batch size instead (a gather and scatter of the
group's slices), so padded samples never enter BatchNorm's statistics.

A UE that trains alone (its group has one member: MNIST ``cnn``'s 6.6 MB of parameters exceed the stacking
budget) with a chain of convolutions, pooling and ``Linear`` layers takes its steps through
:mod:`fedwave.engine.convchain`: autograd's operators, called directly, with a fused ``Linear`` step.
A model that is a chain of ``nn.Linear`` and ``nn.ReLU`` layers (the zoo's ``mlp`` and ``2nn``) takes
its steps through :mod:`fedwave.engine.chain` instead: the same products with the backward pass written
out, the first step from the server's parameters shared by all UEs, the SGD step fused into each
weight's gradient product. For every other model the forward pass is ``torch.func.vmap`` of
``functional_call`` over the UE axis; the gradients come from one ordinary backward pass of the sum of
the UEs' losses (UE k's loss depends on UE k's slice only, so each slice of the gradient is that UE's
own gradient). ``torch.func.grad`` is not used: it imports ``torch._dynamo`` (seconds of start-up).
``nn.Linear`` weights are stacked transposed, ``(U, in, out)``: the batched product yields their
gradient in that layout, so gradient and SGD step run over contiguous memory (stacked as ``(U, out,
in)`` the step's strided add took most of a 2nn step's time).

The FL driver stacks at most :func:`stack_limit` UEs per group; a UE left alone trains through its own
(sequential) code, unless :func:`written_out_alone`.

What is identical to the sequential user: the samples of every step, the order of the steps, the SGD
update rule (``p <- p - lr g``, :class:`fedwave.engine.optim.SGD`), the shared metadata. What differs is
float rounding only: a vmapped (batched) matrix product may sum in another order than one UE's, and a
padded batch's loss is a weighted sum instead of a mean. The tests bound the difference
(:data:`TOLERANCE`). Results are bit-identical run to run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import torch
from torch import nn
from torch.func import functional_call, vmap

from fedwave.engine.batches import gather, mean_cross_entropy, padded, per_sample, weighted_cross_entropy
from fedwave.engine.chain import chain_step, clip_stacked_, linear_chain
from fedwave.engine.convchain import conv_chain, conv_step
from fedwave.engine.dpchain import train_dpsgd_chain
from fedwave.engine.dpconv import dp_conv_chain, train_dpsgd_conv
from fedwave.users.base import Payload, SharedData
from fedwave.users.dpsgd import UserDPSGD
from fedwave.users.multi import UserMultiStep

# Largest difference seen between batched and sequential final models (tests/engine/test_engine_batched.py,
# every zoo model, with and without clipping): 1.2e-7 (resnet), 1.5e-8 to 3e-8 for the others. The tests
# allow TOLERANCE on every parameter and buffer.
TOLERANCE = 1e-5

#: Parameter bytes of the UEs stacked in one group (at most; a model above it trains one UE at a time).
#: Stacking pays where a UE's step is small (per-operation overhead shared by the group); for a model of
#: several MB per UE the stacked parameters and gradients outgrow the cache, and a stacked step reads and
#: writes them from memory where one UE's stay cached (measured: MNIST ``cnn``, 6.6 MB per UE, trains
#: slower stacked by 10 than one UE after another).
STACK_BUDGET_BYTES = 8 * 2**20


def unbatchable_reason(user: object, model: nn.Module) -> str | None:
    """Why ``user`` cannot train in a vmapped group (None when it can)."""
    if type(user) is UserDPSGD:
        if user.algorithm != "fedavg":
            return "DP-SGD users under fl.algorithm=fedsgd"
        shape = tuple(user.inputs.shape[1:])
        if linear_chain(model, shape) is None and not dp_conv_chain(conv_chain(model, shape)):
            return (
                "DP-SGD users of a model other than a Linear/ReLU chain or a chain of ungrouped "
                "convolutions, pooling and Linear layers (mlp, 2nn, cnn and convnet are written out)"
            )
    elif type(user) is not UserMultiStep:
        return f"{type(user).__name__} users (only multi-step SGD and DP-SGD users are vectorised)"
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


#: :func:`hook_reason`'s answer.
HOOKS = "models with hooks (module, parameter or global module hooks, which vectorised steps skip)"


def hook_reason(model: nn.Module, loss: nn.Module) -> str | None:
    """:data:`HOOKS` when ``model`` or ``loss`` (a submodule of either) has a forward or backward hook,
    a parameter of ``model`` has a gradient hook, or a global module hook is registered
    (``torch.nn.modules.module.register_module_*_hook``); else None.

    The sequential user's forward pass and autograd call them once per UE and step. The written-out
    steps never call them; the vmapped step would call a forward hook once per group, on stacked
    tensors. Hooks may be added between rounds, so the driver asks before every batched dispatch (unlike
    :func:`unbatchable_reason`, whose answer holds for a whole run).
    """
    from torch.nn.modules import module as torch_module

    global_hooks = (
        torch_module._global_forward_hooks,
        torch_module._global_forward_pre_hooks,
        torch_module._global_backward_hooks,
        torch_module._global_backward_pre_hooks,
    )
    if any(global_hooks):
        return HOOKS
    for m in (*model.modules(), *loss.modules()):
        if m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or m._backward_pre_hooks:
            return HOOKS
    for p in model.parameters():
        if p._backward_hooks or getattr(p, "_post_accumulate_grad_hooks", None):
            return HOOKS
    return None


def _stack(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.stack([t.detach() for t in tensors])


def written_out_alone(model: nn.Module, sample_shape: Sequence[int]) -> bool:
    """Whether a UE of ``model`` training alone (a group of one) takes the written-out step of
    :mod:`fedwave.engine.convchain` (a convolution chain) rather than its own sequential code."""
    return conv_chain(model, sample_shape) is not None


#: On a CUDA GPU a group is bounded by memory, not by a cache: at most 256 MiB of stacked parameters
#: (the group's gradients and activations come on top), so that a round's UEs train in few kernel
#: launches (a step of 10 samples of one small model leaves the GPU waiting on its launches).
GPU_STACK_BUDGET_BYTES = 256 * 2**20


def stack_limit(model: nn.Module) -> int:
    """Most UEs of ``model`` that train stacked together (at least 1; see :data:`STACK_BUDGET_BYTES` and,
    for a model on a CUDA device, :data:`GPU_STACK_BUDGET_BYTES`)."""
    per_ue = sum(p.numel() * p.element_size() for p in model.parameters())
    first = next(iter(model.parameters()), None)
    on_gpu = first is not None and first.device.type == "cuda"
    return max(1, (GPU_STACK_BUDGET_BYTES if on_gpu else STACK_BUDGET_BYTES) // max(1, per_ue))


def train_multistep_batched(
    users: Sequence[UserMultiStep] | Sequence[UserDPSGD],
    payload: Payload,
    generators: Sequence[torch.Generator],
) -> list[SharedData]:
    """The shared data of each user's ``compute_local_updates(payload, rng=generator)``, trained together.

    All users must be of one type, share one working model (the template of the functional calls) and
    pass :func:`unbatchable_reason`. Each user's query counter advances by one, as in a sequential query.
    DP-SGD users train through :func:`fedwave.engine.dpchain.train_dpsgd_chain` (Linear/ReLU chains, the
    group at once) or :func:`fedwave.engine.dpconv.train_dpsgd_conv` (convolution chains, one UE after
    another).
    """
    if isinstance(users[0], UserDPSGD):
        dp_users = cast(Sequence[UserDPSGD], users)
        shape = tuple(dp_users[0].inputs.shape[1:])
        layers = linear_chain(dp_users[0].model, shape)
        if layers is not None:
            return train_dpsgd_chain(dp_users, layers, payload, generators)
        convs = conv_chain(dp_users[0].model, shape)
        assert convs is not None and dp_conv_chain(convs), "unbatchable_reason admits these chains only"
        return [train_dpsgd_conv(u, convs, payload, gen) for u, gen in zip(dp_users, generators)]
    users = cast(Sequence[UserMultiStep], users)
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
    shape = tuple(users[0].inputs.shape[1:])
    lr = users[0].cfg.local_learning_rate
    clip = users[0].clip_value
    conv = conv_chain(template, shape) if count == 1 else None
    if conv is not None:  # one UE of a convolution chain: its steps written out, in place on its stack
        params = {n: s.unsqueeze(0).clone() for n, s in zip(names, start)}
        own = {n: v[0] for n, v in params.items()}
        for batch in batches[0]:
            conv_step(conv, own, users[0].inputs[batch], users[0].labels[batch], lr, clip)
        buffers = _initial_buffers(users, payload, template, persistent)
        return _all_shared(users, payload, params, names, start, set(), buffers, persistent, batches)
    chain = linear_chain(template, shape)
    flipped = set() if chain is not None else _linear_weights(template)
    # a chain takes its first step from the shared start (chain_step stacks); vmap needs the stack now
    params = {n: s if chain is not None else _stacked(s, count, n in flipped) for n, s in zip(names, start)}
    buffers = _initial_buffers(users, payload, template, persistent)

    def forward(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        logical = {n: v.t() if n in flipped else v for n, v in p.items()}
        out: torch.Tensor = functional_call(template, (logical, b), (x,))
        return out

    def step(members: list[int] | None, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None) -> None:
        """One SGD step of the UEs ``members`` (all when None); ``w``: per-sample loss weights or None
        (mean over the batch)."""
        if chain is not None:  # written-out backward; a chain has no batch statistics: members is None
            assert members is None, "a Linear/ReLU chain steps every UE at once"
            chain_step(chain, params, x, y, w, lr, clip)
            return
        index = None if members is None else torch.tensor(members)
        p_g = {n: (v if index is None else v[index]).detach().requires_grad_() for n, v in params.items()}
        b_g = buffers if index is None else {n: v[index] for n, v in buffers.items()}
        logits = logits_of(p_g, b_g, x)  # BatchNorm updates b_g's running statistics in place
        losses = mean_cross_entropy(logits, y) if w is None else weighted_cross_entropy(logits, y, w)
        grads = dict(zip(names, torch.autograd.grad(losses.sum(), [p_g[n] for n in names])))
        if clip > 0:
            clip_stacked_(grads, clip)
        with torch.no_grad():
            for n in names:
                p_g[n].add_(grads[n], alpha=-lr)
        if index is not None:
            for n in names:
                params[n][index] = p_g[n].detach()
            for n in buffers:
                buffers[n][index] = b_g[n]

    logits_of = vmap(forward)
    paddable = per_sample(template)
    for t in range(max(len(b) for b in batches)):
        rows = [steps[t] if t < len(steps) else None for steps in batches]
        sizes = {0 if r is None else int(r.numel()) for r in rows}
        if len(sizes) == 1 and 0 not in sizes:  # every UE takes a step of the same size
            step(None, *gather(users, rows, list(range(count))), None)
        elif paddable:  # one step of every UE, batches padded to the longest (weight 0, no gradient)
            step(None, *padded(users, rows))
        else:  # one step per batch size (BatchNorm: padding would enter the batch statistics)
            groups: dict[int, list[int]] = {}
            for k, r in enumerate(rows):
                if r is not None:
                    groups.setdefault(int(r.numel()), []).append(k)
            for _, members in sorted(groups.items()):
                step(members, *gather(users, rows, members), None)
    return _all_shared(users, payload, params, names, start, flipped, buffers, persistent, batches)


def _linear_weights(model: nn.Module) -> set[str]:
    """Names of the ``nn.Linear`` weights: stacked as ``(U, in, out)``, so that their gradient (which
    the batched product yields in that layout) and the SGD step run over contiguous memory."""
    return {
        f"{prefix}.weight" if prefix else "weight"
        for prefix, m in model.named_modules()
        if type(m) is nn.Linear
    }


def _stacked(start: torch.Tensor, count: int, flipped: bool) -> torch.Tensor:
    """``count`` copies of ``start`` along a new first axis (transposed per UE when ``flipped``)."""
    one = start.t().contiguous() if flipped else start
    return one.unsqueeze(0).repeat(count, *([1] * one.dim()))


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
        out[name] = _stack(source).to(device=out[name].device, dtype=out[name].dtype)
    return out


def _all_shared(
    users: Sequence[UserMultiStep],
    payload: Payload,
    params: dict[str, torch.Tensor],
    names: list[str],
    start: list[torch.Tensor],
    flipped: set[str],
    buffers: dict[str, torch.Tensor],
    persistent: list[str],
    batches: list[list[torch.Tensor]],
) -> list[SharedData]:
    """What ``UserMultiStep.compute_local_updates`` shares, for every UE of the group.

    The parameter differences of all UEs are formed in one subtraction per tensor (the same
    element-wise arithmetic as the sequential user's) and handed out as one view per UE. A stack the
    group trained in its own memory (``(U, ...)``, contiguous, in the module's layout) is not needed
    after this: the subtraction overwrites it rather than writing the group's differences to new memory.
    """
    diffs = []
    for n, s in zip(names, start):
        p = params[n]
        if n not in flipped and p.shape == (len(users), *s.shape) and p.is_contiguous():
            # the group's own stack (an expanded start is not contiguous)
            diffs.append(p.sub_(s).unbind(0))
            continue
        # contiguous, whatever the stacked layout; on the device the UEs trained on
        d = torch.empty((len(users), *s.shape), dtype=s.dtype, device=s.device)
        torch.sub(p.transpose(1, 2) if n in flipped else p, s, out=d)
        diffs.append(d.unbind(0))
    mode = (payload.get("metadata") or {}).get("buffers_mode", "eval")
    out: list[SharedData] = []
    for k, (user, steps) in enumerate(zip(users, batches)):
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
        if user.cfg.provide_buffers and (payload.get("buffers") is None or mode == "train"):
            shared_buffers = [buffers[n][k].clone() for n in persistent]
        out.append(
            {
                "gradients": [d[k] for d in diffs],
                "buffers": shared_buffers,
                "metadata": user._metadata(y, int(y.shape[0]), hyper),
            }
        )
    return out
