"""Stage `train_expert`: the EfficientNet-B0-style expert classifier on the object crops of the prepared
train split (box and mask from the dataset); test accuracy against chance."""
from dataclasses import asdict

from semguide_core.config import load_params
from semguide_core.runtime import Checkpoint, fingerprint, pick_device, run_stage, seed_everything, write_json
from semguide_core.semantics.datasets import load_object_data
from semguide_core.semantics.expert import Expert, load_imagenet_weights, object_crops, train_expert
from semguide_core.semantics.model_files import run_batched, save_model

PREPARED, EXTRACTED = "artifacts/prepared", "artifacts/extracted_masks"
CHECKPOINT = "checkpoints/train_expert.pt"


def main():
    params = load_params()
    p = params.expert
    device = pick_device(params.device)
    seed_everything(p.seed)
    objects = load_object_data(PREPARED, EXTRACTED)
    data, every, masks, train, test = objects.data, objects.every, objects.masks, objects.train, objects.test
    expert = Expert(data.n_classes, p.width_mult, p.depth_mult, p.dropout, p.stochastic_depth, p.resolution)
    if p.weights:
        load_imagenet_weights(expert, p.weights)
    checkpoint = Checkpoint(CHECKPOINT, fingerprint(asdict(p), *objects.identity()))
    expert = train_expert(expert, every.images[train], masks[train], every.bboxes[train], every.labels[train],
                          p, checkpoint, device)

    def accuracy(rows) -> float:
        crops = object_crops(every.images[rows], masks[rows], every.bboxes[rows], p.resolution)
        return (run_batched(expert, crops, 64).argmax(1) == every.labels[rows]).float().mean().item()

    save_model("models/expert.pt", expert.cpu(), expert.config)
    write_json("metrics/expert.json", {
        "test_accuracy": accuracy(test), "train_accuracy": accuracy(train), "chance": 1 / data.n_classes,
        "n_classes": data.n_classes, "n_train": len(train), "n_test": len(test),
        "pretrained": bool(p.weights), "parameters": sum(t.numel() for t in expert.parameters())})
    checkpoint.clear()


if __name__ == "__main__":
    run_stage(main)
