"""Model-based DDPG (Sec. 6.2, Eq. 17-18), as in Learning to Paint.

The transition is known and differentiable (the neural renderer), so the critic learns the value V of a
state, and the actor maximises r(s_t, a_t) + V(s_t+1) with s_t+1 painted from its own action:

    L_actor  = -E[ r(s_t, a_t) + V(s_t+1) ]                                            Eq. 17
    L_critic =  E[ (V(s_t+1) - gamma * (1 - done) * (r(s_t+1, a_t+1) + V'(s_t+2)))^2 ]   Eq. 18

with a_t+1 from the target actor and V' the target critic (both soft-updated with rate tau); this is
Eq. 18 with r(s_t, a_t) cancelled from both sides, exactly what the published update computes.
With `distance: wgan` the two reward discriminators (full image; aligned foreground crops) are trained
here with WGAN-GP, and their soft-updated copies score the rewards.
"""
from __future__ import annotations

import copy
from dataclasses import replace

import torch

from semguide_core import align
from semguide_core.agent import env
from semguide_core.agent.networks import Actor, Critic, Discriminator, actor_arch
from semguide_core.agent.rewards import Context, Rewards
from semguide_core.agent.spec import AgentSpec
from semguide_core.config import AgentParams
from semguide_core.distributed import World


def n_background(spec: AgentSpec, p: AgentParams) -> int:
    """Background strokes per bundle: K - foreground for the bi-level agent, all K otherwise."""
    return p.bundle - p.foreground_strokes if spec.bilevel else p.bundle


def cell_weights(cells: torch.Tensor, power: float, batch_mean=torch.mean) -> torch.Tensor:
    """Per-sample weights [B] of the actor loss: (mean cell area of each bundle) ** -power, batch mean 1.

    A stroke in a cell of a 16 x 16 grid changes the error 8 (edges) to 64 (area) times less than one in a
    2 x 2 cell, so in an unweighted batch the gradients of the first bundles drown those of the last and the
    fine strokes barely learn. A positive weight per state changes how much each state is heard, not which
    bundle is best in it (the actor maximises r + V state by state): the policy sought stays Eq. 17's.
    `batch_mean`: the mean over the whole batch (`World.mean` when several processes each hold part of it).
    """
    weight = cells[..., 2:].prod(-1).mean(1).clamp(min=1e-6) ** -power
    return weight / batch_mean(weight)


class DDPG:
    """The networks, their optimisers and the update. In a world of several processes (`distributed.py`) the
    losses run through DDP copies (`self.trained`) that average the gradients; acting, the target networks
    and the saved state use the plain networks (`self.nets`), which share their parameters."""

    def __init__(self, spec: AgentSpec, p: AgentParams, density_fn: env.DensityFn, total_updates: int, device,
                 world: World = World()):
        self.spec, self.p, self.density_fn, self.device, self.world = spec, p, density_fn, device, world
        channels = env.in_channels(spec.semantic_inputs)
        self.n_background = n_background(spec, p)
        self.layered = p.compositing == "layered"  # how masked strokes composite (strokes.composite)
        self.actor_arch = actor_arch(p, spec.semantic_inputs, self.n_background)
        self.actor = Actor(**self.actor_arch).to(device)
        self.critic = Critic(channels, p.critic_width, list(p.critic_blocks)).to(device)
        self.nets = {"actor": self.actor, "critic": self.critic}
        self.opts = {"actor": torch.optim.Adam(self.actor.parameters(), lr=p.actor_lr),
                     "critic": torch.optim.Adam(self.critic.parameters(), lr=p.critic_lr)}
        self.wgan = p.distance == "wgan"  # L is WGAN: two discriminators to train, and they score the rewards
        if self.wgan:
            self.nets["disc_full"] = Discriminator(p.disc_width).to(device)
            self.nets["disc_fg"] = Discriminator(p.disc_width).to(device)
            for name in ("disc_full", "disc_fg"):
                self.opts[name] = torch.optim.Adam(self.nets[name].parameters(), lr=p.disc_lr, betas=(0.5, 0.999))
        self.trained = {name: world.wrap(net) for name, net in self.nets.items()}  # DDP starts all ranks equal
        self.targets = {name: copy.deepcopy(net).requires_grad_(False) for name, net in self.nets.items()}
        milestones = [int(f * total_updates) for f in p.lr_decay_at]
        self.scheds = {name: torch.optim.lr_scheduler.MultiStepLR(opt, milestones, p.lr_decay)
                       for name, opt in self.opts.items()}
        critics = (self.targets["disc_full"], self.targets["disc_fg"]) if self.wgan else None
        self.rewards = Rewards(spec.weights, p.distance, critics, p.reward_scale)

    # ------------------------------------------------------------------------------------------ acting
    def observe(self, canvas, ctx: Context, t) -> torch.Tensor:
        return env.observe(canvas, ctx, t, self.p.episode_steps, self.spec.semantic_inputs)

    def bundle(self, actor, canvas, ctx: Context, t) -> tuple[torch.Tensor, torch.Tensor]:
        return env.actor_bundle(actor, canvas, ctx, t, self.p.episode_steps, self.spec.semantic_inputs)

    def paint(self, canvas, bundle, ctx: Context) -> torch.Tensor:
        return env.paint_bundle(canvas, bundle, self.density_fn, self.n_background,
                                env.stroke_mask(ctx.masks) if self.spec.bilevel else None, self.layered)

    @torch.no_grad()
    def act(self, canvas, ctx: Context, t, noise: float = 0.0) -> torch.Tensor:
        """The actor's bundle [B, K, 13] (eval mode), optionally with Gaussian exploration noise."""
        self.actor.eval()
        bundle, _ = self.bundle(self.actor, canvas, ctx, t)
        self.actor.train()
        return (bundle + noise * torch.randn_like(bundle)).clamp(0, 1) if noise else bundle

    # ----------------------------------------------------------------------------------------- learning
    def update(self, canvas0: torch.Tensor, t: torch.Tensor, action: torch.Tensor, ctx: Context) -> dict:
        """One update on a replay batch (C_t, t, a_t, context): the WGAN discriminators when L is WGAN,
        the critic (Eq. 18), the actor (Eq. 17), then the soft update of the target networks."""
        logs = {}
        # the rewards weigh with the S_I that the strokes are composited with (0/1), the actor sees the soft
        # one: with the soft mask, background strokes coloured its edge pixels and the focus term (nu = 10)
        # pulled their colour towards the object's
        scored = replace(ctx, masks=env.stroke_mask(ctx.masks))
        if self.wgan or self.p.gamma > 0:
            with torch.no_grad():
                canvas1 = self.paint(canvas0, action, ctx)
        if self.wgan:
            logs.update(self.update_discriminators(canvas1, scored))
        # with gamma = 0, V is 0 by definition: the critic is skipped and the actor is myopic (cheaper on CPU)
        if self.p.gamma > 0:
            critic_loss = self.critic_loss(canvas1, t, ctx, scored)
            self.step("critic", critic_loss)
            logs["loss/critic"] = critic_loss.item()
        actor_loss, reward, terms = self.actor_loss(canvas0, t, ctx, scored)
        self.step("actor", actor_loss)
        self.soft_update()
        logs.update({"loss/actor": actor_loss.item(), "reward/total": reward.mean().item()})
        logs.update({f"reward/{k}": v.mean().item() for k, v in terms.items()})
        return logs

    def critic_loss(self, canvas1: torch.Tensor, t: torch.Tensor, ctx: Context, scored: Context) -> torch.Tensor:
        """Eq. 18: V(s_t+1) towards gamma * (r(s_t+1, a_t+1) + V'(s_t+2)), 0 after the last step.

        a_t+1 comes from the target actor, V' is the target critic; r(s_t, a_t) cancels from both sides.
        """
        p, T = self.p, self.p.episode_steps
        with torch.no_grad():
            next_action, _ = self.bundle(self.targets["actor"], canvas1, ctx, t + 1)
            canvas2 = self.paint(canvas1, next_action, ctx)
            r1, _ = self.rewards(canvas1, canvas2, scored)
            v2 = self.targets["critic"](self.observe(canvas2, ctx, t + 2))
            target = p.gamma * (t + 1 < T).float() * (r1 + v2 * (t + 2 < T).float())
        return ((self.trained["critic"](self.observe(canvas1, ctx, t + 1)) - target) ** 2).mean()

    def actor_loss(self, canvas0: torch.Tensor, t: torch.Tensor, ctx: Context,
                   scored: Context) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """Eq. 17: -E[r(s_t, a_t) + V(s_t+1)], backpropagated through the frozen renderer into the strokes.

        Returns the loss, the reward r [B] and its terms. A bi-level agent gives each stroke type its own
        reward (Sec. 4.1): the background strokes learn from r_b (Eq. 5), the foreground strokes from the
        whole of Eq. 19. The canvas is the same; only the gradient paths differ. (Measured with one reward
        for all: nu = 10 drove the background strokes' colour into the sigmoid's flat end at step 0, and
        they stayed grey.)
        """
        not_done = (t + 1 < self.p.episode_steps).float()
        bundle, cells = self.bundle(self.trained["actor"], canvas0, ctx, t)
        density, rgb = env.densities(bundle, self.density_fn, canvas0.shape[-2:]), bundle[..., 10:13]
        masks = env.stroke_mask(ctx.masks) if self.spec.bilevel else None
        paint = lambda d, c: env.composite_bundle(  # noqa: E731
            canvas0, d, c, self.n_background, masks, self.layered)
        value_of = lambda canvas: (self.critic(self.observe(canvas, ctx, t + 1)) * not_done  # noqa: E731
                                   if self.p.gamma > 0 else 0.0)
        if not self.spec.bilevel:
            painted = paint(density, rgb)
            reward, terms = self.rewards(canvas0, painted, scored)
            objective = reward + value_of(painted)
        else:
            k = self.n_background  # strokes of the other type held fixed (detached): same canvas, own gradient
            fixed_bg = lambda x: torch.cat([x[:, :k].detach(), x[:, k:]], 1)  # noqa: E731
            fixed_fg = lambda x: torch.cat([x[:, :k], x[:, k:].detach()], 1)  # noqa: E731
            for_fg, for_bg = paint(fixed_bg(density), fixed_bg(rgb)), paint(fixed_fg(density), fixed_fg(rgb))
            with torch.no_grad():
                before = self.rewards.distances(canvas0, scored)
            reward, terms = self.rewards(canvas0, for_fg, scored, before)
            r_b = before["background"] - self.rewards.background(for_bg, scored)
            objective = reward + value_of(for_fg) + r_b + value_of(for_bg)
        return -(cell_weights(cells, self.p.cell_weighting, self.world.mean) * objective).mean(), reward, terms

    def update_discriminators(self, canvas: torch.Tensor, ctx: Context) -> dict:
        """WGAN-GP: real pair (target, target), fake pair (target, canvas); full image and aligned crops.

        Each discriminator scores the real, fake and in-between pairs in one forward (DDP expects one
        forward per backward).
        """
        zoomed = ctx.crops()
        zc = align.crop(canvas, ctx.bboxes) * zoomed.masks
        pairs = {"disc_full": (ctx.targets, canvas), "disc_fg": (zoomed.targets * zoomed.masks, zc)}
        logs = {}
        for name, (real, fake) in pairs.items():
            mix = torch.rand(len(real), 1, 1, 1, device=real.device)
            between = (mix * real + (1 - mix) * fake).requires_grad_(True)
            on_real, on_fake, on_between = self.trained[name](
                real.repeat(3, 1, 1, 1), torch.cat([real, fake, between])).chunk(3)
            grad, = torch.autograd.grad(on_between.sum(), between, create_graph=True)
            penalty = ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
            wasserstein = on_real.mean() - on_fake.mean()
            loss = -wasserstein + self.p.gp_lambda * penalty
            self.step(name, loss)
            logs[f"loss/{name}"] = loss.item()
        return logs

    def step(self, name: str, loss: torch.Tensor) -> None:
        self.world.check_finite(loss, f"{name} loss")
        self.opts[name].zero_grad()
        loss.backward()
        self.opts[name].step()
        self.scheds[name].step()

    @torch.no_grad()
    def soft_update(self) -> None:
        for name, net in self.nets.items():
            for target, source in zip(self.targets[name].parameters(), net.parameters()):
                target.lerp_(source, self.p.tau)
            for target, source in zip(self.targets[name].buffers(), net.buffers()):
                target.copy_(source)

    # -------------------------------------------------------------------------------------- checkpoint
    def state_dict(self) -> dict:
        return {"nets": {k: v.state_dict() for k, v in self.nets.items()},
                "targets": {k: v.state_dict() for k, v in self.targets.items()},
                "opts": {k: v.state_dict() for k, v in self.opts.items()},
                "scheds": {k: v.state_dict() for k, v in self.scheds.items()}}

    def load_state_dict(self, state: dict) -> None:
        for group in ("nets", "targets", "opts", "scheds"):
            for name, obj in getattr(self, group).items():
                obj.load_state_dict(state[group][name])
