"""Stage `train_expert`: the EfficientNet-B0-style expert classifier on the object crops of the prepared
train split (box and mask from the dataset); test accuracy against chance."""
from dataclasses import asdict
from pathlib import Path

import typer

from semguide_core.config import load_params
from semguide_core.runtime import Checkpoint, fingerprint, pick_device, run_stage, seed_everything, write_json
from semguide_core.semantics.datasets import load_object_data
from semguide_core.semantics.expert import Expert, load_imagenet_weights, object_crops, train_expert
from semguide_core.semantics.model_files import run_batched, save_model


def main(prepared: Path = typer.Option(..., help="the prepared dataset (stage prepare)"),
         extracted_masks: Path = typer.Option(..., help="masks for images without one (stage extract_masks)"),
         model: Path = typer.Option(..., help="the expert classifier"),
         metrics: Path = typer.Option(..., help="train and test accuracy (JSON)"),
         live: Path = typer.Option(..., help="DVCLive folder of the training curves"),
         checkpoint: Path = typer.Option(..., help="resumable training state, removed once training ends")):
    params = load_params()
    p = params.expert
    device = pick_device(params.device)
    seed_everything(p.seed)
    objects = load_object_data(prepared, extracted_masks)
    data, every, masks, train, test = objects.data, objects.every, objects.masks, objects.train, objects.test
    expert = Expert(data.n_classes, p.width_mult, p.depth_mult, p.dropout, p.stochastic_depth, p.resolution)
    if p.weights:
        load_imagenet_weights(expert, p.weights)
    ckpt = Checkpoint(checkpoint, fingerprint(asdict(p), *objects.identity()))
    expert = train_expert(expert, every.images[train], masks[train], every.bboxes[train], every.labels[train],
                          p, ckpt, live, device)

    def accuracy(rows) -> float:
        crops = object_crops(every.images[rows], masks[rows], every.bboxes[rows], p.resolution)
        return (run_batched(expert, crops, 64).argmax(1) == every.labels[rows]).float().mean().item()

    save_model(model, expert.cpu(), expert.config)
    write_json(metrics, {
        "test_accuracy": accuracy(test), "train_accuracy": accuracy(train), "chance": 1 / data.n_classes,
        "n_classes": data.n_classes, "n_train": len(train), "n_test": len(test),
        "pretrained": bool(p.weights), "parameters": sum(t.numel() for t in expert.parameters())})
    ckpt.clear()


if __name__ == "__main__":
    run_stage(main)
