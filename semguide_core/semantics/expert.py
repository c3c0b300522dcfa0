"""The expert classifier whose guided-backprop maps drive the focus reward (Sec. 4.3, 6.2).

The paper uses an EfficientNet-B0 trained on the dataset's classes (Stanford Cars). This is an
EfficientNet built from the B0 table with a width and a depth multiplier (efficientnet.py), so that
width = depth = 1 is exactly `torchvision.models.efficientnet_b0` (a local ImageNet weights file for it
loads), while smaller multipliers train on a CPU. The expert classifies the object crop: the image times
its foreground mask, cropped to the box and resized to `resolution` (the published code feeds its expert
the same crop).
`gbp_maps` turns it into the guided-backprop maps G_I.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from semguide_core.align import crop
from semguide_core.runtime import Checkpoint
from semguide_core.semantics.boxes import paste_boxes
from semguide_core.semantics.efficientnet import EfficientNet
from semguide_core.semantics.guided_backprop import (GuidedActivation, guided_gradients, make_guided,
                                                     normalise_maps)
from semguide_core.semantics.model_files import IMAGENET_MEAN, IMAGENET_STD, load_model, load_weights_file
from semguide_core.semantics.training import Schedule, fit, hflip, random_flips


class Expert(nn.Module):
    """forward(crops [N, 3, R, R] in [0, 1]) -> class logits [N, n_classes]; normalises like ImageNet.

    `resolution` (R) is the side of the object crops it was trained on (see object_crops)."""

    def __init__(self, n_classes: int, width_mult: float = 1.0, depth_mult: float = 1.0,
                 dropout: float = 0.2, stochastic_depth: float = 0.2, resolution: int = 64):
        super().__init__()
        self.config = {"n_classes": n_classes, "width_mult": width_mult, "depth_mult": depth_mult,
                       "dropout": dropout, "stochastic_depth": stochastic_depth, "resolution": resolution}
        self.resolution = resolution
        self.net = EfficientNet(n_classes, width_mult, depth_mult, dropout, stochastic_depth)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return self.net((crops - self.mean) / self.std)


def load_imagenet_weights(expert: Expert, path: str | Path) -> None:
    """Load the feature layers of a torchvision efficientnet_b0 ImageNet state dict (the classifier,
    1000 classes, is replaced by the dataset's). Needs width_mult = depth_mult = 1."""
    load_weights_file(path, expert.net.features, "EfficientNet-B0 ImageNet weights", keep_prefix="features.")


def load_expert(path: str | Path, device="cpu") -> Expert:
    """models/expert.pt as a frozen Expert on `device` (ModelFileError naming a bad file)."""
    return load_model(path, Expert, "expert classifier", device)


def object_crops(images: torch.Tensor, masks: torch.Tensor, boxes: torch.Tensor, resolution: int):
    """What the expert sees: images [N, 3, H, W] times masks [N, 1, H, W], the boxes [N, 4] cropped
    (Omega) to resolution x resolution."""
    return crop(images * masks, boxes, (resolution, resolution))


def gbp_maps(expert: nn.Module, images: torch.Tensor, masks: torch.Tensor, boxes: torch.Tensor,
             percentile: float = 99.0) -> torch.Tensor:
    """G_I for images [N, 3, H, W] with masks [N, 1, H, W] and boxes [N, 4]: [N, 1, H, W] in [0, 1].

    Guided backprop of the predicted class on the object crop; the map is the sum over colour channels
    of |gradient|, normalised by its `percentile`-th value on the crop, clipped to [0, 1] (as the
    published code) and pasted back into the box. The gradient is taken with respect to the image
    before masking, so pixels the mask removes get none (the published code differentiates the masked
    crop, whose blanked pixels still receive gradient: on sample-birds 63% of the map mass then fell
    outside the true object, 30% this way).
    `expert` is an Expert or its `make_guided` copy (pass the copy when calling batch after batch).
    """
    guided = expert if any(isinstance(m, GuidedActivation) for m in expert.modules()) else make_guided(expert)
    device = next(guided.parameters()).device
    images, masks, boxes = images.to(device), masks.to(device), boxes.to(device)
    crops = crop(images, boxes, (expert.resolution, expert.resolution))
    crop_masks = crop(masks, boxes, (expert.resolution, expert.resolution))
    grad, _ = guided_gradients(guided, crops * crop_masks)
    # d/d(crop) of f(crop * mask) = mask * f'(crop * mask): the chain rule through the masking
    crop_maps = normalise_maps((grad * crop_masks).abs().sum(1), percentile)
    maps = paste_boxes(crop_maps[:, None], boxes, images.shape[2], images.shape[3])
    return maps.clamp(0.0, 1.0)


def jitter_boxes(boxes: torch.Tensor, generator: torch.Generator, amount: float) -> torch.Tensor:
    """Boxes [N, 4] moved and resized by up to `amount` of their size, kept inside the image: the expert
    learns to classify the slightly-off boxes Psi predicts."""
    noise = (torch.rand(len(boxes), 4, generator=generator) * 2 - 1) * amount
    w = (boxes[:, 2] * (1 + noise[:, 2])).clamp(1e-3, 1)
    h = (boxes[:, 3] * (1 + noise[:, 3])).clamp(1e-3, 1)
    x = (boxes[:, 0] + noise[:, 0] * boxes[:, 2]).clamp(min=0)
    y = (boxes[:, 1] + noise[:, 1] * boxes[:, 3]).clamp(min=0)
    return torch.stack([torch.minimum(x, 1 - w), torch.minimum(y, 1 - h), w, h], 1)


def train_expert(expert: Expert, images: torch.Tensor, masks: torch.Tensor, boxes: torch.Tensor,
                 labels: torch.Tensor, p, checkpoint: Checkpoint, live_dir: str | Path, device) -> Expert:
    """Cross-entropy on object crops (p: the `expert` params) of images [N, 3, H, W] with masks
    [N, 1, H, W], boxes [N, 4] and labels [N], with flips and jittered boxes; the curves logged through
    DVCLive into live_dir."""
    def sample(generator):
        i = torch.randint(len(images), (p.batch_size,), generator=generator)
        flips = random_flips(generator, p.batch_size)
        crops = object_crops(images[i], masks[i], jitter_boxes(boxes[i], generator, p.box_jitter),
                             expert.resolution)
        return hflip(crops, flips), labels[i]

    def loss_fn(model, batch):
        crops, y = (t.to(device) for t in batch)
        logits = model(crops)
        loss = F.cross_entropy(logits, y)
        return loss, {"loss": loss.item(), "accuracy": (logits.argmax(1) == y).float().mean().item()}

    schedule = Schedule(p.steps, p.lr, p.checkpoint_every, p.seed)
    return fit(expert.to(device), loss_fn, sample, schedule, checkpoint, live_dir, "train_expert")
