"""Stage `paint`: paint the test images with the baseline and the semantic agent (Sec. 6.3, Eq. 16).

Reads artifacts/prepared, Psi's masks (artifacts/psi), the GBP maps (artifacts/gbp) and
models/agent_{baseline,semantic}.pt. Writes artifacts/paint/<agent>/: canvases.npy, frames.npy (the canvas
after each of paint.frame_counts strokes), strokes.npy, region.npy, idx.npy, frames.json.
"""
import numpy as np
import torch
from tqdm import tqdm

from semguide_core.agent import load_agent
from semguide_core.config import load_params
from semguide_core.data.prepared import load_prepared
from semguide_core.errors import DataError
from semguide_core.paint import make_scene, paint, to_uint8
from semguide_core.runtime import atomic_path, pick_device, run_stage, seed_everything, write_json

AGENTS = ("baseline", "semantic")


def load_map(path, n_images):
    """A float16 [N, H, W] map file as float32 [N, 1, H, W]; a missing or mis-sized file is a DataError."""
    try:
        maps = np.load(path)
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: cannot read ({type(err).__name__}; run `dvc repro`)") from None
    if maps.ndim != 3 or len(maps) != n_images:
        raise DataError(f"{path}: shape {maps.shape}, expected [{n_images}, H, W] (one map per prepared image)")
    return torch.from_numpy(maps.astype(np.float32))[:, None]


def main():
    params = load_params()
    p = params.paint
    device = pick_device(params.device)
    seed_everything(0)
    data = load_prepared("artifacts/prepared")
    test = data.split("test")
    test = test[:p.max_images] if p.max_images else test
    soft_masks = load_map("artifacts/psi/masks.npy", len(data))[test]
    gbp_maps = load_map("artifacts/gbp/maps.npy", len(data))[test]
    targets = data.tensors(test).images
    counts = sorted(set(c for c in p.frame_counts if c <= p.strokes) | {p.strokes})

    with atomic_path("artifacts/paint") as out:
        for name in AGENTS:
            agent = load_agent(f"models/agent_{name}.pt", device)
            canvases, frames, strokes, regions = [], [], [], []
            for start in tqdm(range(0, len(test), p.batch_size), desc=f"paint {name}", unit="batch"):
                chunk = slice(start, start + p.batch_size)
                scene = make_scene(targets[chunk].to(device), soft_masks[chunk].to(device), gbp_maps[chunk].to(device),
                                   p.min_instance_area, p.max_instances)
                painting = paint(agent, scene, p.strokes, frame_counts=counts)
                canvases.append(painting.canvas.cpu())
                frames.append(torch.stack([painting.frames[c].cpu() for c in counts], 1))
                strokes.append(painting.strokes.cpu())
                regions.append(painting.region.cpu())
            folder = out / name
            folder.mkdir(parents=True)
            np.save(folder / "canvases.npy", to_uint8(torch.cat(canvases)))
            np.save(folder / "frames.npy", to_uint8(torch.cat(frames)))
            np.save(folder / "strokes.npy", torch.cat(strokes).numpy().astype(np.float32))
            np.save(folder / "region.npy", torch.cat(regions).numpy().astype(np.int16))
            np.save(folder / "idx.npy", np.asarray(test, dtype=np.int64))
            write_json(folder / "frames.json", {"counts": counts, "strokes": p.strokes, "agent_kind": agent.kind})


if __name__ == "__main__":
    run_stage(main)
