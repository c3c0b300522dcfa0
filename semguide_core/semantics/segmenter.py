"""DeepLabV3 foreground segmentation (Sec. 6.1: the paper computes Stanford Cars masks with a pretrained
DeepLabV3-ResNet101).

`Segmenter` wraps a torchvision DeepLabV3 (backbone: MobileNetV3-Large by default, for CPUs; ResNet-50 or
ResNet-101 as in the paper) and returns a foreground probability per pixel: the softmax mass of its
foreground classes. Two ways to get one:
- torchvision's pretrained COCO-with-VOC-labels weights (a local file, or torchvision's download cache
  when present): 21 VOC classes, of which the chosen ones (bird, car) count as foreground;
- trained here, two classes, on the datasets that have masks (the offline default).
Images are resized to `resolution` inside (DeepLabV3's output stride is 8 to 16, so a 64 px canvas alone
leaves it a 4x4 feature map) and the probability is resized back.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import segmentation as tvseg

from semguide_core.errors import ConfigError, ModelFileError
from semguide_core.semantics.expert import IMAGENET_MEAN, IMAGENET_STD
from semguide_core.semantics.model_files import load_model, load_weights_file

# backbone -> (builder, torchvision's pretrained COCO-with-VOC-labels weights)
BACKBONES = {
    "mobilenet_v3_large": (tvseg.deeplabv3_mobilenet_v3_large,
                           tvseg.DeepLabV3_MobileNet_V3_Large_Weights.COCO_WITH_VOC_LABELS_V1),
    "resnet50": (tvseg.deeplabv3_resnet50, tvseg.DeepLabV3_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1),
    "resnet101": (tvseg.deeplabv3_resnet101, tvseg.DeepLabV3_ResNet101_Weights.COCO_WITH_VOC_LABELS_V1),
}
VOC_CLASSES = BACKBONES["resnet101"][1].meta["categories"]  # '__background__', 'aeroplane', ... 21 names


class Segmenter(nn.Module):
    """forward(images [N, 3, H, W] in [0, 1]) -> foreground probability [N, 1, H, W]."""

    def __init__(self, backbone: str, num_classes: int = 2, foreground: list[int] = (1,),
                 resolution: int = 96):
        super().__init__()
        if backbone not in BACKBONES:
            raise ConfigError(f"segmenter backbone {backbone!r}: must be one of {', '.join(BACKBONES)}")
        build = BACKBONES[backbone][0]
        # weights_backbone=None too: otherwise torchvision downloads an ImageNet backbone
        self.net = build(weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=False)
        self.backbone = backbone
        self.foreground = list(foreground)
        self.resolution = resolution
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits at `resolution`: [N, num_classes, R, R]."""
        x = F.interpolate(images, size=(self.resolution, self.resolution), mode="bilinear",
                          align_corners=False, antialias=True)
        return self.net((x - self.mean) / self.std)["out"]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        probability = self.logits(images).softmax(1)[:, self.foreground].sum(1, keepdim=True)
        return F.interpolate(probability, size=images.shape[2:], mode="bilinear", align_corners=False)


def find_pretrained(backbone: str, weights: str) -> Path | None:
    """Which pretrained file to use: `weights` = 'none' (train instead), 'auto' (torchvision's cache
    if the file is there, else train) or a path (must exist)."""
    if weights == "none":
        return None
    if weights == "auto":
        url = BACKBONES[backbone][1].url
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name
        return cached if cached.is_file() else None
    if not Path(weights).is_file():
        raise ModelFileError(f"{weights}: segmenter weights file not found")
    return Path(weights)


def pretrained_segmenter(backbone: str, path: str | Path, foreground_names: list[str],
                         resolution: int) -> Segmenter:
    """A Segmenter from torchvision's 21-class VOC weights; `foreground_names` (VOC names) count as
    foreground. The auxiliary head in torchvision's files is not used and is dropped."""
    unknown = [name for name in foreground_names if name not in VOC_CLASSES]
    if unknown:
        raise ConfigError(f"voc_foreground: unknown VOC class {unknown[0]!r} (known: {', '.join(VOC_CLASSES[1:])})")
    model = Segmenter(backbone, len(VOC_CLASSES), [VOC_CLASSES.index(n) for n in foreground_names], resolution)
    load_weights_file(path, model.net, f"DeepLabV3-{backbone} VOC weights", drop_prefixes=("aux_classifier.",))
    return model.eval()


def config_of(segmenter: Segmenter) -> dict:
    """The builder arguments stored with the weights in models/segmenter.pt."""
    return {"backbone": segmenter.backbone, "num_classes": segmenter.net.classifier[-1].out_channels,
            "foreground": segmenter.foreground, "resolution": segmenter.resolution}


def load_segmenter(path: str | Path, device="cpu") -> Segmenter:
    """models/segmenter.pt as a frozen Segmenter on `device` (ModelFileError naming a bad file)."""
    return load_model(path, Segmenter, "segmenter", device)
