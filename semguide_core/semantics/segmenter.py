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
from torchvision.models import mobilenet_v3_large, resnet50, resnet101
from torchvision.models import segmentation as tvseg
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.segmentation.deeplabv3 import ASPP, DeepLabV3

from semguide_core.errors import ConfigError, ModelFileError
from semguide_core.runtime import Checkpoint
from semguide_core.semantics.model_files import IMAGENET_MEAN, IMAGENET_STD, load_model, load_weights_file
from semguide_core.semantics.training import Schedule, fit, hflip, random_flips, recalibrate_batchnorm

# torchvision's pretrained COCO-with-VOC-labels weights of each backbone (for the file name in its cache)
PRETRAINED = {
    "mobilenet_v3_large": tvseg.DeepLabV3_MobileNet_V3_Large_Weights.COCO_WITH_VOC_LABELS_V1,
    "resnet50": tvseg.DeepLabV3_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1,
    "resnet101": tvseg.DeepLabV3_ResNet101_Weights.COCO_WITH_VOC_LABELS_V1,
}
VOC_CLASSES = PRETRAINED["resnet101"].meta["categories"]  # '__background__', 'aeroplane', ... 21 names


def build_deeplabv3(backbone: str, num_classes: int, width_mult: float = 1.0, aspp_channels: int = 256,
                    atrous_rates: list[int] = (12, 24, 36)) -> DeepLabV3:
    """torchvision's DeepLabV3 (no auxiliary head), put together as its builders do, plus two knobs for
    CPUs: the MobileNetV3 width multiplier and the ASPP width. With width_mult = 1, aspp_channels = 256
    the layers and names are exactly torchvision's deeplabv3_<backbone>, so its weights files load; the
    atrous rates (the paper's 12, 24, 36 suit ~500 px inputs) change no weight. No ImageNet backbone
    weights are fetched (weights=None)."""
    if backbone == "mobilenet_v3_large":
        features = mobilenet_v3_large(weights=None, width_mult=width_mult, dilated=True).features
        last = len(features) - 1  # C5, output stride 16
        body, channels = IntermediateLayerGetter(features, {str(last): "out"}), features[last].out_channels
    elif backbone in ("resnet50", "resnet101"):
        if width_mult != 1.0:
            raise ConfigError(f"segmenter width_mult = {width_mult}: only mobilenet_v3_large has a width multiplier")
        resnet = {"resnet50": resnet50, "resnet101": resnet101}[backbone]
        net = resnet(weights=None, replace_stride_with_dilation=[False, True, True])  # output stride 8
        body, channels = IntermediateLayerGetter(net, {"layer4": "out"}), 2048
    else:
        raise ConfigError(f"segmenter backbone {backbone!r}: must be one of {', '.join(PRETRAINED)}")
    head = nn.Sequential(  # torchvision's DeepLabHead with a chosen width
        ASPP(channels, list(atrous_rates), aspp_channels),
        nn.Conv2d(aspp_channels, aspp_channels, 3, padding=1, bias=False), nn.BatchNorm2d(aspp_channels),
        nn.ReLU(), nn.Conv2d(aspp_channels, num_classes, 1))
    return DeepLabV3(body, head, None)


class Segmenter(nn.Module):
    """forward(images [N, 3, H, W] in [0, 1]) -> foreground probability [N, 1, H, W]."""

    def __init__(self, backbone: str, num_classes: int = 2, foreground: list[int] = (1,), resolution: int = 96,
                 width_mult: float = 1.0, aspp_channels: int = 256, atrous_rates: list[int] = (12, 24, 36)):
        super().__init__()
        self.config = {"backbone": backbone, "num_classes": num_classes, "foreground": list(foreground),
                       "resolution": resolution, "width_mult": width_mult, "aspp_channels": aspp_channels,
                       "atrous_rates": list(atrous_rates)}
        self.net = build_deeplabv3(backbone, num_classes, width_mult, aspp_channels, atrous_rates)
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
        url = PRETRAINED[backbone].url
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name
        return cached if cached.is_file() else None
    if not Path(weights).is_file():
        raise ModelFileError(f"{weights}: segmenter weights file not found")
    return Path(weights)


def pretrained_segmenter(backbone: str, path: str | Path, foreground_names: list[str], resolution: int,
                         atrous_rates: list[int] = (12, 24, 36)) -> Segmenter:
    """A Segmenter from torchvision's 21-class VOC weights; `foreground_names` (VOC names) count as
    foreground. The auxiliary head in torchvision's files is not used and is dropped."""
    unknown = [name for name in foreground_names if name not in VOC_CLASSES]
    if unknown:
        raise ConfigError(f"voc_foreground: unknown VOC class {unknown[0]!r} (known: {', '.join(VOC_CLASSES[1:])})")
    model = Segmenter(backbone, len(VOC_CLASSES), [VOC_CLASSES.index(n) for n in foreground_names], resolution,
                      atrous_rates=atrous_rates)
    load_weights_file(path, model.net, f"DeepLabV3-{backbone} VOC weights", drop_prefixes=("aux_classifier.",))
    return model.eval()


def config_of(segmenter: Segmenter) -> dict:
    """The builder arguments stored with the weights in models/segmenter.pt."""
    return dict(segmenter.config)


def load_segmenter(path: str | Path, device="cpu") -> Segmenter:
    """models/segmenter.pt as a frozen Segmenter on `device` (ModelFileError naming a bad file)."""
    return load_model(path, Segmenter, "segmenter", device)


def train_segmenter(model: Segmenter, images: torch.Tensor, masks: torch.Tensor, p, checkpoint: Checkpoint,
                    live_dir: str | Path, device) -> Segmenter:
    """Two-class cross-entropy at the segmenter's resolution on images [N, 3, H, W], masks [N, 1, H, W]
    (p: the `segmenter` params), foreground pixels weighted by p.foreground_weight, with random
    left-right flips; the curves logged through DVCLive into live_dir."""
    def sample(generator):
        i = torch.randint(len(images), (p.batch_size,), generator=generator)
        flips = random_flips(generator, p.batch_size)
        return hflip(images[i], flips), hflip(masks[i], flips)

    class_weights = torch.tensor([1.0, p.foreground_weight])

    def loss_fn(model, batch):
        x, y = (t.to(device) for t in batch)
        logits = model.logits(x)
        target = F.interpolate(y, size=logits.shape[2:], mode="bilinear", align_corners=False)[:, 0] > 0.5
        loss = F.cross_entropy(logits, target.long(), weight=class_weights.to(logits.device))
        return loss, {"loss": loss.item()}

    schedule = Schedule(p.steps, p.lr, p.checkpoint_every, p.seed)
    fit(model.to(device), loss_fn, sample, schedule, checkpoint, live_dir, "train_segmenter")
    recalibrate_batchnorm(model, images, p.batch_size)
    return model
