"""Stage `train_renderer`: fit the neural renderer Phi to the rasteriser; held-out MSE / PSNR and a figure.

Several processes: `torchrun --nproc_per_node N stages/train_renderer.py` (DDP, semguide_core/distributed.py);
rank 0 alone writes the outputs.
"""
import contextlib
from dataclasses import asdict

from dvclive import Live

from semguide_core.config import load_params
from semguide_core.distributed import join, leave
from semguide_core.figures import renderer_comparison
from semguide_core.renderer import build_renderer, renderer_file, train_renderer
from semguide_core.runtime import (Checkpoint, fingerprint, load_torch, run_stage, save_torch, seed_everything,
                                   write_json)

STROKES = "artifacts/strokes"
CHECKPOINT = "checkpoints/train_renderer.pt"


def main():
    params = load_params()
    p = params.renderer
    world = join(params.device)
    train = load_torch(f"{STROKES}/train.pt", "stroke set")
    val = load_torch(f"{STROKES}/val.pt", "stroke set")
    seed_everything(world.seed(p.seed))
    model = build_renderer(p, params.canvas)  # DDP gives every process rank 0's initial weights
    run_id = fingerprint(asdict(p), params.canvas, len(train["strokes"]), val["strokes"][:4].tolist(), world.size)
    checkpoint = Checkpoint(CHECKPOINT, run_id)
    logger = (Live("dvclive/renderer", dvcyaml=False, save_dvc_exp=False, resume=checkpoint.load() is not None)
              if world.main else contextlib.nullcontext())
    with logger as live:
        held_out = train_renderer(model, p, train, val, checkpoint, live, world.device, world)
    leave(world)
    if not world.main:
        return
    model.cpu()
    save_torch("models/renderer.pt", renderer_file(model))
    renderer_comparison(model, val["strokes"][:16], val["density"][:16], "figures/renderer_strokes.png")
    write_json("metrics/renderer.json", {
        "heldout_mse": held_out["mse"], "heldout_psnr_db": held_out["psnr"],
        "worst_stroke_mse": held_out["worst_stroke_mse"], "n_heldout": len(val["strokes"]),
        "parameters": sum(t.numel() for t in model.parameters()), "canvas": params.canvas, "steps": p.steps})
    checkpoint.clear()


if __name__ == "__main__":
    run_stage(main)
