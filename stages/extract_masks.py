"""Stage `extract_masks`: DeepLabV3 masks for a dataset without masks (Stanford Cars, Sec. 6.1), scored
against the true masks where they were kept aside (sample-cars)."""
from pathlib import Path

import numpy as np
import torch
import typer

from semguide_core.config import load_params
from semguide_core.runtime import atomic_path, pick_device, run_stage, write_json
from semguide_core.semantics.boxes import mask_iou
from semguide_core.semantics.datasets import kept_aside_masks, prepare_in_memory
from semguide_core.semantics.model_files import run_batched
from semguide_core.semantics.segmenter import load_segmenter


def main(segmenter: Path = typer.Option(..., help="the segmenter (stage train_segmenter)"),
         out: Path = typer.Option(..., help="the masks and their index (folder)"),
         metrics: Path = typer.Option(..., help="mask area and IoU against the kept-aside masks (JSON)")):
    params = load_params()
    p = params.extract_masks
    model = load_segmenter(segmenter, pick_device(params.device))
    dataset = prepare_in_memory(p.dataset, params, params.prepare.max_images)
    images = dataset.tensors(np.arange(len(dataset))).images
    masks = (run_batched(model, images, 32)[:, 0] > p.threshold).numpy().astype(np.uint8)
    with atomic_path(out) as tmp:
        tmp.mkdir(parents=True)
        dataset.index[["idx", "split", "source"]].to_csv(tmp / "index.csv", index=False)
        np.save(tmp / "masks.npy", masks)
    scores = {"dataset": p.dataset, "n_images": len(dataset), "mask_area_mean": float(masks.mean())}
    truth = kept_aside_masks(params.prepare.data_dir, dataset)
    if truth is not None:  # sample-cars: score against the masks the dataset does not ship
        iou = mask_iou(torch.from_numpy(masks), torch.from_numpy(truth)).numpy()
        test = (dataset.index["split"] == "test").to_numpy()
        scores |= {"iou_mean": float(iou.mean()), "iou_test": float(iou[test].mean()),
                   "true_mask_area_mean": float(truth.mean())}
    write_json(metrics, scores)


if __name__ == "__main__":
    run_stage(main)
