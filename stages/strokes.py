"""Stage `strokes`: random 13-parameter Bezier strokes, rasterised, as the renderer's train / held-out sets."""
import torch

from semguide_core.config import load_params
from semguide_core.runtime import atomic_path, run_stage
from semguide_core.strokes import stroke_set

OUT = "artifacts/strokes"


def main():
    params = load_params()
    p = params.strokes
    generator = torch.Generator().manual_seed(p.seed)
    train = stroke_set(p.n_train, params.canvas, generator)
    val = stroke_set(p.n_val, params.canvas, generator)
    with atomic_path(OUT) as out:
        out.mkdir()
        torch.save(train, out / "train.pt")
        torch.save(val, out / "val.pt")


if __name__ == "__main__":
    run_stage(main)
