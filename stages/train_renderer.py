"""Stage `train_renderer`: fit the neural renderer Phi to the rasteriser; held-out MSE / PSNR and a figure.

Several processes: `torchrun --nproc_per_node N stages/train_renderer.py ARGS...` (DDP,
semguide_core/distributed.py; ARGS as in the stage's cmd); rank 0 alone writes the outputs.
"""
import contextlib
from dataclasses import asdict
from pathlib import Path

import typer
from dvclive import Live

from semguide_core.config import load_params
from semguide_core.distributed import join, leave
from semguide_core.figures import renderer_comparison
from semguide_core.renderer import build_renderer, renderer_file, train_renderer
from semguide_core.runtime import (Checkpoint, fingerprint, load_torch, run_stage, save_torch, seed_everything,
                                   write_json)


def main(strokes: Path = typer.Option(..., help="stroke sets of stage strokes (train.pt, val.pt)"),
         model: Path = typer.Option(..., help="the trained renderer"),
         metrics: Path = typer.Option(..., help="held-out scores (JSON)"),
         figure: Path = typer.Option(..., help="held-out strokes, rasteriser above renderer (PNG)"),
         live: Path = typer.Option(..., help="DVCLive folder of the training curves"),
         checkpoint: Path = typer.Option(..., help="resumable training state, removed once training ends")):
    params = load_params()
    p = params.renderer
    world = join(params.device)
    train = load_torch(strokes / "train.pt", "stroke set")
    val = load_torch(strokes / "val.pt", "stroke set")
    seed_everything(world.seed(p.seed))
    renderer = build_renderer(p, params.canvas)  # DDP gives every process rank 0's initial weights
    run_id = fingerprint(asdict(p), params.canvas, len(train["strokes"]), val["strokes"][:4].tolist(), world.size)
    ckpt = Checkpoint(checkpoint, run_id)
    logger = (Live(str(live), dvcyaml=False, save_dvc_exp=False, resume=ckpt.load() is not None)
              if world.main else contextlib.nullcontext())
    with logger as log:
        held_out = train_renderer(renderer, p, train, val, ckpt, log, world.device, world)
    leave(world)
    if not world.main:
        return
    renderer.cpu()
    save_torch(model, renderer_file(renderer))
    renderer_comparison(renderer, val["strokes"][:16], val["density"][:16], figure)
    write_json(metrics, {
        "heldout_mse": held_out["mse"], "heldout_psnr_db": held_out["psnr"],
        "worst_stroke_mse": held_out["worst_stroke_mse"], "n_heldout": len(val["strokes"]),
        "parameters": sum(t.numel() for t in renderer.parameters()), "canvas": params.canvas, "steps": p.steps})
    ckpt.clear()


if __name__ == "__main__":
    run_stage(main)
