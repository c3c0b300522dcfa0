"""Stage `train_agent@<name>`: train one painting agent (baseline, semantic, ...) with model-based DDPG.

Usage: python stages/train_agent.py <name>   (names: semguide_core/agent/spec.py)
       torchrun --nproc_per_node N stages/train_agent.py <name>   (N processes, DDP: semguide_core/distributed.py)
Writes models/agent_<name>.pt, metrics/agent_<name>.json, figures/agent_<name>_val.png, dvclive/agent_<name>/
(rank 0 alone).
"""
import contextlib
import sys
import time
from dataclasses import asdict

import imageio.v3 as iio
import torch
from dvclive import Live

from semguide_core.agent import env
from semguide_core.agent.data import load_pool
from semguide_core.agent.inference import agent_file, rollout
from semguide_core.agent.replay import Replay
from semguide_core.agent.spec import agent_spec
from semguide_core.agent.train import CURVE_STROKES, forget_logs_after, grid, painting_agent, train
from semguide_core.config import load_params
from semguide_core.distributed import join, leave
from semguide_core.errors import ConfigError
from semguide_core.metrics import db, image_means
from semguide_core.renderer import load_renderer
from semguide_core.runtime import (Checkpoint, atomic_path, fingerprint, run_stage, save_torch, seed_everything,
                                   write_json)

PREPARED, PSI, GBP, RENDERER = "artifacts/prepared", "artifacts/psi", "artifacts/gbp", "models/renderer.pt"


def main():
    if len(sys.argv) != 2:
        raise ConfigError("usage: python stages/train_agent.py <agent name>")
    params = load_params()
    spec, p = agent_spec(sys.argv[1], params), params.agent
    if p.foreground_strokes > p.bundle:
        raise ConfigError(f"params.yaml: agent.foreground_strokes = {p.foreground_strokes} exceeds agent.bundle = {p.bundle}")
    world = join(params.device)
    device = world.device
    if p.threads:
        torch.set_num_threads(p.threads)
    seed_everything(world.seed(p.seed))
    pool = pool_for(spec, p)
    renderer = load_renderer(RENDERER, device)
    run_id = fingerprint(sys.argv[1], asdict(spec), asdict(p), params.canvas, len(pool), pool.test[:4].tolist(),
                         world.size)
    checkpoint = Checkpoint(f"checkpoints/agent_{spec.name}.pt", run_id)
    started = time.time()
    saved, live_dir = checkpoint.load(), f"dvclive/agent_{spec.name}"
    if saved is not None and world.main:
        forget_logs_after(live_dir, saved["updates"])
    logger = (Live(live_dir, dvcyaml=False, save_dvc_exp=False, resume=saved is not None) if world.main
              else contextlib.nullcontext())
    with logger as live:
        ddpg, reached = train(spec, p, pool, renderer, checkpoint, live, device, saved, world)
    leave(world)
    if not world.main:
        return
    minutes = (time.time() - started) / 60

    # final metrics on every test image, painted with the real rasteriser (as `paint` paints): the error
    # after the whole episode and after each of CURVE_STROKES strokes, the curve against strokes
    agent = painting_agent(ddpg)
    test = torch.as_tensor(pool.test)
    ctx = pool.context(test, torch.zeros_like(test), device)
    out = rollout(agent, ctx, env.raster_density(params.canvas), keep=CURVE_STROKES)
    gt = pool.gt_masks[test].float().to(out["canvas"].device)
    metrics = image_means(ctx.targets, out["canvas"], gt)
    curve = {f"test_l2_after_{n}_strokes": image_means(ctx.targets, canvas, gt)["l2"] for n, canvas in out["frames"].items()}
    shown = slice(0, p.val_images)
    with atomic_path(f"figures/agent_{spec.name}_val.png") as tmp:
        iio.imwrite(tmp, grid(ctx.targets[shown], out["canvas"][shown]), extension=".png")
    save_torch(f"models/agent_{spec.name}.pt", agent_file(agent, ddpg.actor_arch, params.canvas))
    write_json(f"metrics/agent_{spec.name}.json", {
        "test_l2": metrics["l2"], "test_psnr_db": db(metrics["l2"]), "test_fg_l2": metrics["fg_l2"], **curve,
        "n_test": len(test), **reached, "strokes": p.episode_steps * p.bundle, "processes": world.size,
        "train_minutes_this_run": round(minutes, 2),
        "actor_parameters": sum(t.numel() for t in ddpg.actor.parameters()),
        "replay_bytes_per_transition": Replay(1, params.canvas, p.bundle).bytes_per_transition,
        "distance": p.distance, "canvas": params.canvas})
    checkpoint.clear()


def pool_for(spec, p):
    """The semantic agents train on Psi's masks / boxes and the GBP maps, as the paper does."""
    pool = load_pool(PREPARED, PSI if spec.uses_semantics else None, GBP if spec.uses_semantics else None)
    if p.mix_artifacts:
        other = load_pool(f"{p.mix_artifacts}/prepared", f"{p.mix_artifacts}/psi" if spec.uses_semantics else None,
                          f"{p.mix_artifacts}/gbp" if spec.uses_semantics else None)
        pool = pool.merged(other, p.mix_ratio)
    return pool.focus_ablation() if spec.ablation_data else pool


if __name__ == "__main__":
    run_stage(main)
