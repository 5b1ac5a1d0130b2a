"""Sample-level DP-SGD of many UEs at once, for Linear/ReLU chains: per-example norms without per-example
gradients.

:class:`~fedwave.users.dpsgd.UserDPSGD` (FedAvg) takes, per local step, a Poisson batch, every example's
gradient (``vmap`` of ``grad``), clips each to L2 norm C, sums, adds N(0, (z C)^2) per coordinate and
divides by the expected batch size q n. For a chain of ``nn.Linear`` and ``nn.ReLU`` layers (the zoo's
``mlp`` and ``2nn``; :func:`fedwave.engine.chain.linear_chain`) the batched executor does the same for a
group of UEs stacked along a leading axis, without forming any example's gradient:

- example s's gradient with respect to a ``Linear`` weight is the outer product ``g_s a_s^T`` of the
  gradient at the layer's output and the layer's input, so its squared norm is
  ``|g_s|^2 |a_s|^2``, and that of the bias ``|g_s|^2``; the example's norm sums these over the layers;
- the clipped sum over the batch is ``(f * g)^T a`` (one batched product per weight), ``f`` the
  examples' clip factors (``C / norm * (1 - 1e-6)`` above C, else 1, as
  :func:`fedwave.privacy.dp.dpsgd.clip_per_example`);
- the Poisson batches (of different sizes) are zero-padded to the longest with factor 0; a UE past its
  last step has factor 0 throughout and draws no noise, so its parameters stay as they are.

Every UE draws from its own generator in the sequential order: the batch's uniforms, the dropout seed
(drawn whenever the batch is not empty, though a chain has no dropout to use it), then the noise. So the
steps see the same batches and noise as the sequential user; what differs is float rounding (the norms
are formed from two factors, the sums in batched products), bounded by
:data:`fedwave.engine.batched.TOLERANCE` in the tests.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from fedwave.engine.batches import padded
from fedwave.engine.chain import Layer, Linear, chain_forward, loss_gradient
from fedwave.privacy.dp.dpsgd import poisson_batch
from fedwave.privacy.dp.mechanisms import gaussian_noise
from fedwave.users.base import Payload, SharedData
from fedwave.users.dpsgd import UserDPSGD


def train_dpsgd_chain(
    users: Sequence[UserDPSGD],
    layers: Sequence[Layer],
    payload: Payload,
    generators: Sequence[torch.Generator],
) -> list[SharedData]:
    """The shared data of each user's ``compute_local_updates(payload, rng=generator)`` (FedAvg),
    trained together. All users share one working model, whose chain is ``layers``."""
    template = users[0].model
    users[0]._synchronize(payload)  # the server's parameters into the template
    names = [n for n, _ in template.named_parameters()]
    start = [p.detach().clone() for p in template.parameters()]
    u = len(users)
    params = {n: s.unsqueeze(0).repeat(u, *([1] * s.dim())) for n, s in zip(names, start)}
    lr = users[0].cfg.local_learning_rate
    schedules = []
    for user in users:
        user.counted_queries += 1
        schedules.append(user._schedule(user.num_data_points))
    for t in range(max(steps for _, steps in schedules)):
        batches: list[torch.Tensor | None] = []
        noises: list[list[torch.Tensor] | None] = []
        for user, gen, (q, steps) in zip(users, generators, schedules):
            if t >= steps:
                batches.append(None)
                noises.append(None)
                continue
            idx, noise = step_draws(user, q, [s.shape for s in start], gen)
            batches.append(idx)
            noises.append(noise)
        _dp_step(users, layers, params, names, batches, noises, schedules, lr)
    out: list[SharedData] = []
    for k, user in enumerate(users):
        y = user.labels
        out.append(
            {
                "gradients": [params[n][k] - s for n, s in zip(names, start)],
                "buffers": None,
                "metadata": user._metadata(y, int(y.shape[0]), None),
            }
        )
    return out


def step_draws(
    user: UserDPSGD, q: float, shapes: Sequence[torch.Size], gen: torch.Generator
) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
    """One DP-SGD step's draws from the UE's generator, in the sequential user's order: the Poisson
    batch (sample rate ``q``), the dropout seed (whenever the batch is not empty, though a written-out
    chain has no dropout to use it), then the noise N(0, (z C)^2) of each parameter shape (None when
    z = 0: nothing drawn). Returns (the batch's sample indices, the noise)."""
    idx = poisson_batch(user.num_data_points, q, gen)
    if idx.numel() > 0:
        torch.randint(0, 2**62, (1,), generator=gen)
    z, clip = user.noise_multiplier, user.dp_clip
    return idx, gaussian_noise(list(shapes), z * (clip or 0.0), gen) if z > 0 else None


def _dp_step(
    users: Sequence[UserDPSGD],
    layers: Sequence[Layer],
    params: dict[str, torch.Tensor],
    names: list[str],
    batches: list[torch.Tensor | None],
    noises: list[list[torch.Tensor] | None],
    schedules: list[tuple[float, int]],
    lr: float,
) -> None:
    """One DP-SGD step of every UE with a batch (``None``: no step, parameters unchanged)."""
    u = len(users)
    x, y, w = padded(users, batches)
    width, device = y.shape[1], x.device
    real = (w > 0).double()  # 1: an example of the batch; 0: padding, or a UE without a step
    acts = chain_forward(layers, params, x.flatten(2))  # acts[i]: the input of layer i
    g = loss_gradient(acts[-1], y)  # each example's own loss: no 1/b
    outputs: dict[int, torch.Tensor] = {}  # the gradient at each Linear's output, per example
    sq = torch.zeros(u, width, dtype=torch.float64, device=device)
    for i in range(len(layers) - 1, -1, -1):
        layer = layers[i]
        if layer is None:
            g = g * (acts[i + 1] > 0)
            continue
        outputs[i] = g
        g_sq = g.double().pow(2).sum(2)
        sq += g_sq * acts[i].double().pow(2).sum(2)
        if layer.bias is not None:
            sq += g_sq
        if any(layers[j] is not None for j in range(i)):
            g = torch.bmm(g, params[layer.weight])
    factors = torch.ones(u, width, dtype=torch.float64, device=device)
    for k, user in enumerate(users):
        clip = user.dp_clip
        if clip is not None:
            norms = sq[k].sqrt()
            factors[k] = torch.where(norms > clip, clip / norms * (1.0 - 1e-6), torch.ones_like(norms))
    factors *= real  # padding, and the UEs without a step, add nothing
    grads: dict[str, torch.Tensor] = {}
    for i, g_out in outputs.items():
        layer = layers[i]
        assert isinstance(layer, Linear)
        scaled = g_out * factors.to(g_out.dtype).unsqueeze(2)
        grads[layer.weight] = torch.bmm(scaled.transpose(1, 2), acts[i])
        if layer.bias is not None:
            grads[layer.bias] = scaled.sum(dim=1)
    for k, (noise, (q, _)) in enumerate(zip(noises, schedules)):
        if batches[k] is None:
            continue
        expected = q * users[k].num_data_points  # the expected batch size, not the realised one
        for j, n in enumerate(names):
            step = grads[n][k] if noise is None else grads[n][k] + noise[j].to(device)
            params[n][k].add_(step / expected, alpha=-lr)
