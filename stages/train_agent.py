"""Stage `train_agent@<name>`: train one painting agent (baseline, semantic, ...) with model-based DDPG.

Usage: python stages/train_agent.py NAME --prepared DIR ...   (names: semguide_core/agent/spec.py; `--help`
       lists the paths it takes)
       torchrun --nproc_per_node N stages/train_agent.py NAME ...   (N processes, DDP: semguide_core/distributed.py)
Rank 0 alone writes the outputs.
"""
import contextlib
import time
from dataclasses import asdict, replace
from typing import Optional
from pathlib import Path

import imageio.v3 as iio
import torch
import typer
from dvclive import Live

from semguide_core.agent.data import load_pool
from semguide_core.agent.inference import agent_file
from semguide_core.agent.replay import Replay
from semguide_core.agent.spec import agent_spec
from semguide_core.agent.train import CURVE_STROKES, forget_logs_after, grid, painting_agent, train
from semguide_core.painting import paint_episodes
from semguide_core.config import load_params
from semguide_core.distributed import join, leave
from semguide_core.errors import ConfigError
from semguide_core.metrics import db, image_means
from semguide_core.renderer import load_renderer
from semguide_core.runtime import (Checkpoint, atomic_path, fingerprint, run_stage, save_torch, seed_everything,
                                   write_json)


def main(name: str = typer.Argument(..., help="the agent: baseline, semantic, focus_ablation or baseline_mask"),
         prepared: Path = typer.Option(..., help="the prepared dataset (stage prepare)"),
         masks: Path = typer.Option(..., help="Psi's masks and boxes (stage train_psi); not read by an "
                                              "agent that trains on the true ones (baseline)"),
         maps: Path = typer.Option(..., help="the GBP maps (stage gbp); not read by an agent that trains "
                                             "on the true masks (baseline: no maps)"),
         renderer: Path = typer.Option(..., help="the neural renderer (stage train_renderer)"),
         model: Path = typer.Option(..., help="the trained agent"),
         metrics: Path = typer.Option(..., help="scores on the test images (JSON)"),
         figure: Path = typer.Option(..., help="test images and their paintings (PNG)"),
         live: Path = typer.Option(..., help="DVCLive folder of the training curves"),
         checkpoint: Path = typer.Option(..., help="resumable training state, removed once training ends"),
         kappa: float = typer.Option(0.0, min=0.0, help="the focus reward's weight (Eq. 20); focus_ablation only"),
         seed: Optional[int] = typer.Option(None, min=0, help="replaces agent.seed: a repeat of the same "
                                                              "experiment (the focus ablation's second seed)"),
         mix_prepared: Optional[Path] = typer.Option(None, help="a single-object dataset whose episodes are "
                                                                "mixed in, agent.mix_ratio of them (Sec. 5: "
                                                                "Virtual KITTI with Stanford Cars)"),
         mix_masks: Optional[Path] = typer.Option(None, help="its Psi masks and boxes (as --masks)"),
         mix_maps: Optional[Path] = typer.Option(None, help="its GBP maps (as --maps)")):
    params = load_params()
    if kappa and name != "focus_ablation":
        raise ConfigError(f"--kappa {kappa}: only the focus_ablation agent has a focus-only reward (Eq. 20)")
    spec, p = agent_spec(name, params, kappa), params.agent
    if seed is not None:
        p = replace(p, seed=seed)
    if p.foreground_strokes > p.bundle:
        raise ConfigError(f"params.yaml: agent.foreground_strokes = {p.foreground_strokes} exceeds agent.bundle = {p.bundle}")
    world = join(params.device)
    device = world.device
    if p.threads:
        torch.set_num_threads(p.threads)
    seed_everything(world.seed(p.seed))
    mix = (mix_prepared, mix_masks, mix_maps)
    if any(mix) and not all(mix):
        raise ConfigError("--mix-prepared, --mix-masks and --mix-maps go together (the mixed-in dataset)")
    pool = pool_for(spec, p, prepared, masks, maps, mix if all(mix) else None)
    neural_renderer = load_renderer(renderer, device)
    run_id = fingerprint(name, asdict(spec), asdict(p), params.canvas, len(pool), pool.test[:4].tolist(),
                         world.size)
    ckpt = Checkpoint(checkpoint, run_id)
    started = time.time()
    saved = ckpt.load()
    if saved is not None and world.main:
        forget_logs_after(live, saved["updates"])
    logger = (Live(str(live), dvcyaml=False, save_dvc_exp=False, resume=saved is not None) if world.main
              else contextlib.nullcontext())
    with logger as log:
        ddpg, reached = train(spec, p, pool, neural_renderer, ckpt, log, device, saved, world)
    leave(world)
    if not world.main:
        return
    minutes = (time.time() - started) / 60

    # final metrics on every test image, painted with the real rasteriser (as `paint` paints): the error
    # after the whole episode and after each of CURVE_STROKES strokes, the curve against strokes
    agent = painting_agent(ddpg)
    test = torch.as_tensor(pool.test)
    ctx = pool.context(test, torch.zeros_like(test), device)
    out = paint_episodes(agent, ctx, CURVE_STROKES)
    gt = pool.gt_masks[test].float().to(out.canvas.device)
    # Sec. 7.1's claim is about detail on the distinguishing parts: the error on the part masks the data
    # records, and (for the agents that read G_I) the error weighted by the expert's GBP map on the object
    maps = {"part": pool.parts[test].float().to(gt.device)} if pool.parts[test].any() else {}
    if spec.uses_semantics:
        maps["gbp"] = ctx.gbp * gt
    means = image_means(ctx.targets, out.canvas, gt, **maps)
    curve = {f"test_l2_after_{n}_strokes": image_means(ctx.targets, canvas, gt)["l2"] for n, canvas in out.frames.items()}
    shown = slice(0, p.val_images)
    with atomic_path(figure) as tmp:
        iio.imwrite(tmp, grid(ctx.targets[shown], out.canvas[shown]), extension=".png")
    save_torch(model, agent_file(agent, ddpg.actor_arch, params.canvas))
    write_json(metrics, {
        "test_l2": means["l2"], "test_psnr_db": db(means["l2"]), "test_fg_l2": means["fg_l2"],
        **{f"test_{name}_l2": means[f"{name}_l2"] for name in maps}, **curve,
        "n_test": len(test), **reached, "strokes": p.episode_steps * p.bundle, "processes": world.size,
        "train_minutes_this_run": round(minutes, 2),
        "actor_parameters": sum(t.numel() for t in ddpg.actor.parameters()),
        "replay_bytes_per_transition": Replay(1, params.canvas, p.bundle).bytes_per_transition,
        "distance": p.distance, "canvas": params.canvas,
        "reward_eta": spec.weights.eta, "reward_nu": spec.weights.nu})  # Eq. 19; Eq. 20's kappa is nu
    ckpt.clear()


def pool_for(spec, p, prepared: Path, masks: Path, maps: Path, mix: tuple | None = None):
    """The semantic agents train on Psi's masks / boxes and the GBP maps, as the paper does. mix: (prepared,
    masks, maps) of a dataset mixed in."""
    semantic = lambda path: path if spec.uses_semantics else None  # noqa: E731
    pool = load_pool(prepared, semantic(masks), semantic(maps))
    if mix is not None:
        pool = pool.merged(load_pool(mix[0], semantic(mix[1]), semantic(mix[2])), p.mix_ratio)
    return pool.focus_ablation() if spec.ablation_data else pool


if __name__ == "__main__":
    run_stage(main)
