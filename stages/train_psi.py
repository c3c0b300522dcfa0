"""Stage `train_psi`: Psi (Eq. 7) on the prepared train split; its S_I and box for every prepared image
(the agent trains on Psi's predictions, as in the paper); mask and box IoU on the test split."""
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import typer

from semguide_core.config import load_params
from semguide_core.runtime import (Checkpoint, atomic_path, fingerprint, pick_device, run_stage, seed_everything,
                                   write_json)
from semguide_core.semantics.boxes import bbox_iou, mask_iou, mask_to_bbox
from semguide_core.semantics.datasets import load_object_data
from semguide_core.semantics.model_files import run_batched, save_model
from semguide_core.semantics.psi import Psi, PsiPredictor, train_psi


def main(prepared: Path = typer.Option(..., help="the prepared dataset (stage prepare)"),
         extracted_masks: Path = typer.Option(..., help="masks for images without one (stage extract_masks)"),
         model: Path = typer.Option(..., help="Psi"),
         out: Path = typer.Option(..., help="Psi's mask and box of every prepared image (folder)"),
         metrics: Path = typer.Option(..., help="mask and box IoU on the test split (JSON)"),
         live: Path = typer.Option(..., help="DVCLive folder of the training curves"),
         checkpoint: Path = typer.Option(..., help="resumable training state, removed once training ends")):
    params = load_params()
    p = params.psi
    device = pick_device(params.device)
    seed_everything(p.seed)
    objects = load_object_data(prepared, extracted_masks)
    data, every, masks, train, test = objects.data, objects.every, objects.masks, objects.train, objects.test
    ckpt = Checkpoint(checkpoint, fingerprint(asdict(p), *objects.identity()))
    psi = train_psi(Psi(p.widths), every.images[train], masks[train], every.bboxes[train], p, ckpt, live, device)
    predicted, boxes = run_batched(PsiPredictor(psi), every.images, 64)
    with atomic_path(out) as tmp:
        tmp.mkdir(parents=True)
        np.save(tmp / "masks.npy", predicted[:, 0].numpy().astype(np.float16))
        pd.DataFrame({"idx": np.arange(len(data)), **dict(zip("xywh", boxes.numpy().T))}).to_csv(
            tmp / "bboxes.csv", index=False)
    save_model(model, psi.cpu(), {"widths": p.widths})
    write_json(metrics, {
        "mask_iou": mask_iou(predicted[test, 0], masks[test, 0]).mean().item(),
        "bbox_iou": bbox_iou(boxes[test], every.bboxes[test]).mean().item(),
        "bbox_iou_of_mask_box": bbox_iou(mask_to_bbox(predicted[test, 0]), every.bboxes[test]).mean().item(),
        "mask_target": "true" if data.index["has_mask"].all() else "extracted where the dataset has none",
        "n_train": len(train), "n_test": len(test), "parameters": sum(t.numel() for t in psi.parameters())})
    ckpt.clear()


if __name__ == "__main__":
    run_stage(main)
