"""The training loop of one agent: parallel episodes fill the replay, DDPG updates learn from it.

Every `checkpoint_every` updates (at the next episode boundary) the networks, optimisers, schedules,
replay (uint8 canvases, about 100 MB at the default size), counters, unlogged sums and random states are
saved; a killed run resumes there and ends exactly as an uninterrupted one. A NaN or inf loss stops
training with `TrainingDiverged` and leaves the last good checkpoint in place.

With several processes (`distributed.World`) each runs its own episodes into its own replay with its own
random streams, and they update in step (DDP averages the gradients). Rank 0 logs, validates and writes
the checkpoint, which holds every process's replay and random states, so each resumes where it was.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from semguide_core.agent import env
from semguide_core.agent.data import Pool
from semguide_core.agent.ddpg import DDPG
from semguide_core.agent.inference import PaintingAgent
from semguide_core.agent.replay import Replay
from semguide_core.agent.spec import AgentSpec
from semguide_core.config import AgentParams
from semguide_core.distributed import World
from semguide_core.errors import TrainingDiverged
from semguide_core.metrics import image_means
from semguide_core.painting import paint_episodes
from semguide_core.runtime import Checkpoint


def total_updates(p: AgentParams) -> int:
    return int(max(0, p.train_steps - p.warmup_steps) * p.updates_per_step)


def painting_agent(ddpg: DDPG) -> PaintingAgent:
    """The actor being trained, seen as a PaintingAgent (shares its weights)."""
    return PaintingAgent(ddpg.spec.name, ddpg.spec.kind, ddpg.n_background, ddpg.p.episode_steps,
                         ddpg.spec.semantic_inputs, ddpg.actor, ddpg.p.compositing)


def train(spec: AgentSpec, p: AgentParams, pool: Pool, renderer, checkpoint: Checkpoint, live,
          device, saved: dict | None = None, world: World = World()) -> tuple[DDPG, dict]:
    """Train the agent `spec` on `pool` with the neural renderer; logs through DVCLive `live` (rank 0's).

    saved: what `checkpoint.load()` returned, to resume from (None: a fresh run); new checkpoints go to
    `checkpoint`. world: this process among the training processes (one by default).
    Returns the trained DDPG and what was reached: environment steps and updates. The length is set in
    steps only, never in minutes, so the result does not depend on the machine's speed or load.
    """
    T, E = p.episode_steps, p.envs
    density = env.training_density(renderer, p.training_canvas, pool.images.shape[-1])
    ddpg = DDPG(spec, p, density, total_updates(p), device, world)
    replay = Replay(p.replay_size, pool.images.shape[-1], p.bundle)
    gen = torch.Generator().manual_seed(world.seed(p.seed))
    env_step, updates, owed, sums = 0, 0, 0.0, {}
    if saved is not None:
        ddpg.load_state_dict(saved["ddpg"])
        own = saved["ranks"][world.rank]
        replay.load_state_dict(own["replay"])
        gen.set_state(own["rng"])
        torch.set_rng_state(own["torch_rng"])
        env_step, updates, owed, sums = saved["env_step"], saved["updates"], saved["owed"], saved["sums"]
    val = {split: pool.context(torch.as_tensor(ids[:p.val_images]), torch.zeros(min(p.val_images, len(ids))), device)
           for split, ids in (("test", pool.test), ("train", pool.train[0]))}
    # a checkpoint is written right after a validation, so a resumed run has logged its step's validation
    last_saved, validated = updates, (updates if saved is not None else None)
    # the bar is closed before an error propagates, so the error's line starts a line of its own
    with tqdm(total=p.train_steps, initial=env_step, desc=f"train_agent@{spec.name}", disable=not world.main) as bar:
        while env_step < p.train_steps:
            t = env_step % T
            if t == 0:
                idx, instance = pool.sample(E, gen)
                ctx = pool.context(idx, instance, device)
                canvas = torch.zeros_like(ctx.targets)
            bundle = ddpg.act(canvas, ctx, t, p.noise)
            replay.add(canvas, t, idx, instance, bundle)
            with torch.no_grad():
                canvas = ddpg.paint(canvas, bundle, ctx)
            env_step += 1
            bar.update()
            if env_step > p.warmup_steps and replay.size >= p.batch_size:
                owed += p.updates_per_step
            while owed >= 1:
                owed -= 1
                batch = replay.sample(p.batch_size, gen, device)
                try:
                    logs = ddpg.update(batch["canvas"], batch["step"], batch["action"],
                                       pool.context(batch["idx"], batch["instance"], device))
                except FloatingPointError as err:
                    raise TrainingDiverged(f"agent {spec.name}: {err} at update {updates}; {checkpoint.kept()}",
                                           every_rank=world.distributed) from None
                updates += 1
                for key, value in logs.items():
                    sums[key] = sums.get(key, 0.0) + value
                if updates % p.log_every == 0:
                    if world.main:  # rank 0's own losses and rewards
                        live.step = updates
                        for key, value in sums.items():
                            live.log_metric(f"train/{key}", value / p.log_every)
                        live.log_metric("train/lr_actor", ddpg.scheds["actor"].get_last_lr()[0])
                        bar.set_postfix(reward=f"{sums['reward/total'] / p.log_every:.2e}")
                    sums = {}
            if env_step % T == 0 and updates - last_saved >= p.checkpoint_every:
                ranks = world.gather({"replay": replay.state_dict(), "rng": gen.get_state(),
                                      "torch_rng": torch.get_rng_state()})
                if world.main:
                    log_validation(live, ddpg, val, pool, updates)
                    checkpoint.save({"ddpg": ddpg.state_dict(), "ranks": ranks, "env_step": env_step,
                                     "updates": updates, "owed": owed, "sums": sums})
                validated = last_saved = updates
        if validated != updates and world.main:
            log_validation(live, ddpg, val, pool, updates)  # the curves end at the final weights
    return ddpg, {"env_steps": env_step, "updates": updates}


def forget_logs_after(live_dir, step: int) -> None:
    """Drop the DVCLive rows logged after `step` (a killed run's, past its checkpoint) before resuming there.

    DVCLive appends on resume; without this, the steps between the checkpoint and the kill appear twice.
    """
    for tsv in Path(live_dir, "plots", "metrics").rglob("*.tsv"):
        rows = pd.read_csv(tsv, sep="\t")
        kept = rows[rows["step"] <= step]
        if len(kept) < len(rows):
            kept.to_csv(tsv, sep="\t", index=False)


CURVE_STROKES = (10, 20, 50, 100, 200)  # the learning curves' x values within an episode


def log_validation(live, ddpg: DDPG, val: dict, pool: Pool, updates: int) -> None:
    """Paint the validation images (`val`: split -> Context; test and train) with the neural renderer.

    Logs L2 and foreground L2 after the whole episode and L2 after each of CURVE_STROKES strokes, per split,
    and the test canvases as an image: curves against updates and against strokes.
    """
    live.step = updates
    for split, ctx in val.items():
        ids = pool.test if split == "test" else pool.train[0]
        out = paint_episodes(painting_agent(ddpg), ctx, CURVE_STROKES, ddpg.density_fn)
        gt = pool.gt_masks[torch.as_tensor(ids[:len(out.canvas)])].float().to(out.canvas.device)
        for key, value in image_means(ctx.targets, out.canvas, gt).items():
            live.log_metric(f"{split}/{key}", value)
        for n, canvas in out.frames.items():
            live.log_metric(f"{split}/l2_after_{n}_strokes", image_means(ctx.targets, canvas, gt)["l2"])
        if split == "test":
            live.log_image("val_canvases.png", grid(ctx.targets, out.canvas))
    live.next_step()


def grid(targets: torch.Tensor, canvases: torch.Tensor) -> np.ndarray:
    """Targets on the top row, canvases below, as one uint8 HWC image."""
    rows = [torch.cat(list(x), dim=2) for x in (targets, canvases)]
    image = torch.cat(rows, dim=1).clamp(0, 1).permute(1, 2, 0)
    return (image.cpu().numpy() * 255).round().astype(np.uint8)
