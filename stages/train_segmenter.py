"""Stage `train_segmenter`: DeepLabV3 foreground segmentation, pretrained VOC weights when present, else
trained on the datasets that have masks; held-out IoU per dataset."""
from dataclasses import asdict
from pathlib import Path

import torch
import typer

from semguide_core.config import load_params
from semguide_core.runtime import Checkpoint, fingerprint, pick_device, run_stage, seed_everything, write_json
from semguide_core.semantics.boxes import mask_iou
from semguide_core.semantics.datasets import prepare_in_memory
from semguide_core.semantics.model_files import run_batched, save_model
from semguide_core.semantics.segmenter import (Segmenter, config_of, find_pretrained, pretrained_segmenter,
                                               train_segmenter)


def main(model: Path = typer.Option(..., help="the segmenter"),
         metrics: Path = typer.Option(..., help="held-out IoU per dataset (JSON)"),
         live: Path = typer.Option(..., help="DVCLive folder of the training curves"),
         checkpoint: Path = typer.Option(..., help="resumable training state, removed once training ends")):
    params = load_params()
    p = params.segmenter
    device = pick_device(params.device)
    seed_everything(p.seed)
    datasets = {name: prepare_in_memory(name, params, p.max_images) for name in p.datasets}
    train = [d.tensors(d.split("train")) for d in datasets.values()]
    pretrained = find_pretrained(p.backbone, p.weights)
    ckpt = Checkpoint(checkpoint, fingerprint(asdict(p), params.canvas, params.prepare.test_fraction))
    if pretrained is not None:
        print(f"using pretrained VOC weights {pretrained} (foreground: {', '.join(p.voc_foreground)})")
        segmenter = pretrained_segmenter(p.backbone, pretrained, p.voc_foreground, p.resolution,
                                         p.atrous_rates).to(device)
    else:
        untrained = Segmenter(p.backbone, resolution=p.resolution, width_mult=p.width_mult,
                              aspp_channels=p.aspp_channels, atrous_rates=p.atrous_rates)
        segmenter = train_segmenter(untrained,
                                    torch.cat([b.images for b in train]), torch.cat([b.masks for b in train]),
                                    p, ckpt, live, device)
    held_out = {}
    for name, dataset in datasets.items():
        test = dataset.tensors(dataset.split("test"))
        probability = run_batched(segmenter, test.images, p.batch_size)
        held_out[name] = mask_iou(probability[:, 0], test.masks[:, 0]).mean().item()
    segmenter = segmenter.cpu()
    save_model(model, segmenter, config_of(segmenter))
    write_json(metrics, {
        "heldout_iou": held_out, "heldout_iou_mean": sum(held_out.values()) / len(held_out),
        "source": f"pretrained {pretrained}" if pretrained else "trained",
        "backbone": p.backbone, "resolution": p.resolution, "canvas": params.canvas,
        "n_train_images": sum(len(b.idx) for b in train),
        "parameters": sum(t.numel() for t in segmenter.parameters())})
    ckpt.clear()


if __name__ == "__main__":
    run_stage(main)
