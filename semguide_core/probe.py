"""How much of the first bundle the actor learns, against what the renderer allows (`semguide probe-actor`).

The trained agents plateau near L2 0.02 (docs/agent.md). This probe isolates the actor's part of that:
both sides paint one bundle of K strokes on a black canvas (t = 0) of the same test images, through the
same neural renderer, with the same L2 reward:

- the actor curve: a fresh actor of the agent's architecture, trained by the DDPG actor update (Eq. 17,
  gamma = 0) on first bundles of training images; test L2 after one bundle every `every` updates.
- the direct bar (`direct_l2`): each test image's bundle optimised on its own (Adam on its K x 13
  numbers from a random start): what one bundle can reach, and what an amortised actor approaches.
A wide gap after as many updates as the agents get says the actor's learning, not the renderer or the
reward, is what limits the paintings within a CPU budget. The actor trains at a constant learning rate:
the agents' schedule (lr_decay_at) would drop it part-way through the probe, and a plateau there would
measure the schedule, not the actor.

Reference canvases to read the curve against are in semguide_core/references.py (`semguide references`).
"""
from __future__ import annotations

from dataclasses import replace

import torch

from semguide_core.agent import env
from semguide_core.agent.data import Pool
from semguide_core.agent.ddpg import DDPG
from semguide_core.agent.rewards import Context, l2_distance
from semguide_core.agent.spec import AgentSpec
from semguide_core.config import AgentParams
from semguide_core.strokes import STROKE_SIZE


def first_bundle_l2(ddpg: DDPG, bundle: torch.Tensor, ctx: Context) -> torch.Tensor:
    """L2 (MSE) per image [B] after painting `bundle` [B, K, 13] on a black canvas."""
    return l2_distance(ctx.targets, ddpg.paint(torch.zeros_like(ctx.targets), bundle, ctx))


def run_probe(spec: AgentSpec, p: AgentParams, pool: Pool, renderer, test_ctx: Context, updates: int,
              every: int, direct_steps: int, direct_lr: float = 0.1, seed: int = 0) -> dict:
    """{'curve': [(updates, mean test L2 after the actor's first bundle)] at 0, every, ... updates,
        'direct': mean test L2 after one bundle optimised per image (`direct_steps` Adam steps)}."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    # the myopic actor update alone (no critic, no discriminator), at a constant learning rate
    p = replace(p, gamma=0.0, distance="l2", lr_decay_at=[])
    density = env.training_density(renderer, p.training_canvas, test_ctx.targets.shape[-1])
    ddpg = DDPG(spec, p, density, updates, test_ctx.targets.device)
    curve = []
    for update in range(updates + 1):
        if update % every == 0 or update == updates:
            black = torch.zeros_like(test_ctx.targets)
            with torch.no_grad():
                curve.append((update, first_bundle_l2(ddpg, ddpg.act(black, test_ctx, 0), test_ctx).mean().item()))
        if update == updates:
            break
        idx, instance = pool.sample(p.batch_size, gen)
        ctx = pool.context(idx, instance, test_ctx.targets.device)
        black, first = torch.zeros_like(ctx.targets), torch.zeros(len(idx))
        ddpg.update(black, first, None, ctx)  # replayed actions only feed the critic and discriminators
    direct = direct_l2(ddpg, test_ctx, direct_steps, direct_lr, torch.Generator().manual_seed(seed))
    return {"curve": curve, "direct": direct}


def direct_l2(ddpg: DDPG, ctx: Context, steps: int, lr: float, gen: torch.Generator) -> float:
    """Mean L2 after one bundle optimised per image: `steps` Adam steps on stroke logits from random starts."""
    logits = torch.randn(len(ctx.targets), ddpg.p.bundle, STROKE_SIZE, generator=gen).to(ctx.targets.device)
    logits.requires_grad_(True)
    opt = torch.optim.Adam([logits], lr=lr)
    for _ in range(steps):
        loss = first_bundle_l2(ddpg, torch.sigmoid(logits), ctx).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return first_bundle_l2(ddpg, torch.sigmoid(logits), ctx).mean().item()
