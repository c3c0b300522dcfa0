"""Stage `strokes`: random 13-parameter Bezier strokes, rasterised, as the renderer's train / held-out sets."""
from pathlib import Path

import torch

from semguide_core.config import load_params
from semguide_core.runtime import atomic_path, run_stage
from semguide_core.strokes import stroke_set


def main(out: Path):
    """Write the stroke sets into the folder `out` (train.pt, val.pt)."""
    params = load_params()
    p = params.strokes
    generator = torch.Generator().manual_seed(p.seed)
    train = stroke_set(p.n_train, params.canvas, generator)
    val = stroke_set(p.n_val, params.canvas, generator)
    with atomic_path(out) as tmp:
        tmp.mkdir()
        torch.save(train, tmp / "train.pt")
        torch.save(val, tmp / "val.pt")


if __name__ == "__main__":
    run_stage(main)
