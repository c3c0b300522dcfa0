"""The one typed loader for params.yaml.

Every hyperparameter of the pipeline is named here, once, with its default, its type and its allowed
range. `load_params()` reads params.yaml, rejects unknown keys, wrong types and out-of-range values with a
one-line `ConfigError` naming the key and the value, and returns a frozen `Params` tree that stages read
(`params.renderer.steps`, `params.eta`, ...).

The paper's reward weights (eta, nu) live at the top level so that `dvc exp run -S eta=3` works.
The file is long because it is the pipeline's one list of hyperparameters (about 110, each with its
range and a line saying what it does), followed by the small loader that checks them.
"""
from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from semguide_core.errors import ConfigError


def param(default, *, lo=None, hi=None, choices=None, doc: str = ""):
    """A dataclass field with a checked range: lo <= value <= hi, or value in choices."""
    meta = {"lo": lo, "hi": hi, "choices": choices, "doc": doc}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: list(default) if isinstance(default, list) else dict(default),
                     metadata=meta)
    return field(default=default, metadata=meta)


# --------------------------------------------------------------------------------------------- sections
@dataclass(frozen=True)
class StrokesParams:
    """Stage `strokes`: random 13-parameter Bezier strokes rasterised as renderer training data."""
    n_train: int = param(40000, lo=1, doc="training strokes")
    n_val: int = param(2000, lo=1, doc="held-out strokes")
    seed: int = param(0, lo=0)


@dataclass(frozen=True)
class RendererParams:
    """Stage `train_renderer`: the neural renderer Phi (FC expansion, then conv + pixel-shuffle)."""
    fc_widths: list = param([512, 1024, 2048], lo=1, doc="hidden widths of the fully connected expansion")
    conv_width: int = param(16, lo=1, doc="channels of the conv + pixel-shuffle blocks")
    upsample_blocks: int = param(3, lo=1, hi=5, doc="each doubles the side; the FC output is canvas / 2**blocks")
    loss: str = param("bce", choices=["bce", "mse"], doc="bce: BCE on logits (trains reliably); mse: as published")
    batch_size: int = param(64, lo=1)
    steps: int = param(6000, lo=1)
    lr: float = param(1e-3, lo=0.0)
    lr_decay_at: list = param([0.6, 0.85], lo=0.0, hi=1.0, doc="fractions of `steps` where lr is divided by 10")
    checkpoint_every: int = param(500, lo=1)
    processes: int = param(1, lo=1, doc="training processes on this machine (DDP, semguide_core/distributed.py); "
                           "the global batch is batch_size x processes")
    seed: int = param(0, lo=0)


@dataclass(frozen=True)
class PrepareParams:
    """Stage `prepare`: read `dataset` through its loader, resize to the canvas."""
    data_dir: str = param("data", doc="root holding the datasets (tracked by data.dvc)")
    max_images: int = param(0, lo=0, doc="0 = all; else that many, evenly spaced through the dataset")
    test_fraction: float = param(0.25, lo=0.0, hi=0.9, doc="test share of each sequence, for datasets "
                                 "without an official split (Virtual KITTI)")


@dataclass(frozen=True)
class SegmenterParams:
    """Stage `train_segmenter`: DeepLabV3 foreground segmentation (Sec. 6.1), see docs/semantics.md."""
    backbone: str = param("mobilenet_v3_large", choices=["mobilenet_v3_large", "resnet50", "resnet101"],
                          doc="the paper: resnet101")
    weights: str = param("auto", doc="auto: torchvision's cached COCO/VOC file if present, else train; "
                                     "none: train; or the path of that file")
    voc_foreground: list = param(["bird", "car"], doc="VOC classes that count as foreground (pretrained weights)")
    datasets: list = param(["sample-birds", "sample-scenes"], doc="datasets with masks to train on")
    max_images: int = param(400, lo=0, doc="images per dataset, 0 = all")
    resolution: int = param(96, lo=32, hi=1024, doc="side the images are resized to inside the segmenter")
    width_mult: float = param(0.5, lo=0.05, hi=4.0, doc="MobileNetV3 channel multiplier (1 = torchvision's)")
    aspp_channels: int = param(64, lo=1, doc="ASPP / head width (torchvision's: 256)")
    atrous_rates: list = param([2, 4, 6], lo=1, doc="ASPP dilations; the paper's 12, 24, 36 suit ~500 px inputs")
    foreground_weight: float = param(8.0, lo=0.0, doc="cross-entropy weight of foreground pixels (background: 1)")
    batch_size: int = param(16, lo=1)
    steps: int = param(300, lo=1)
    lr: float = param(3e-3, lo=0.0)
    checkpoint_every: int = param(100, lo=1)
    seed: int = param(0, lo=0)


@dataclass(frozen=True)
class ExtractMasksParams:
    """Stage `extract_masks`: the segmenter's masks for a dataset without masks (Stanford Cars)."""
    dataset: str = param("sample-cars", doc="set it to `dataset` when that one has no masks")
    threshold: float = param(0.5, lo=0.0, hi=1.0, doc="foreground probability above which a pixel is object")


@dataclass(frozen=True)
class PsiParams:
    """Stage `train_psi`: Psi (Eq. 7), foreground mask head (cross-entropy) + bbox head (Smooth L1)."""
    widths: list = param([16, 32, 64, 96], lo=1, doc="channels per encoder level; each level halves the side")
    bbox_weight: float = param(5.0, lo=0.0, doc="weight of L_bbox against L_fg")
    smooth_l1_beta: float = param(0.05, lo=1e-6, doc="where Smooth L1 turns from quadratic to linear")
    zoom: float = param(0.25, lo=0.0, hi=0.9, doc="augmentation: each sample zoomed by a factor in 1 +- zoom")
    shift: float = param(0.25, lo=0.0, hi=1.0, doc="augmentation: and shifted by up to this fraction of the side")
    colour_jitter: float = param(0.3, lo=0.0, hi=1.0, doc="augmentation: per-channel gain in 1 +- colour_jitter")
    batch_size: int = param(32, lo=1)
    steps: int = param(6000, lo=1)
    lr: float = param(3e-3, lo=0.0)
    checkpoint_every: int = param(100, lo=1)
    seed: int = param(0, lo=0)


@dataclass(frozen=True)
class ExpertParams:
    """Stage `train_expert`: the EfficientNet-B0-style expert classifier for guided backprop (Sec. 6.2)."""
    width_mult: float = param(0.5, lo=0.05, hi=4.0, doc="B0 channel multiplier (1 = efficientnet_b0)")
    depth_mult: float = param(0.5, lo=0.05, hi=4.0, doc="B0 layer multiplier (1 = efficientnet_b0)")
    resolution: int = param(64, lo=16, hi=1024, doc="side of the object crop the expert classifies")
    box_jitter: float = param(0.1, lo=0.0, hi=0.5, doc="training boxes move / resize by up to this share")
    weights: str = param("", doc="path of a torchvision efficientnet_b0 ImageNet state dict; empty = from scratch")
    dropout: float = param(0.2, lo=0.0, hi=1.0)
    stochastic_depth: float = param(0.0, lo=0.0, hi=1.0)
    batch_size: int = param(32, lo=1)
    steps: int = param(700, lo=1)
    lr: float = param(3e-3, lo=0.0)
    checkpoint_every: int = param(100, lo=1)
    seed: int = param(0, lo=0)


@dataclass(frozen=True)
class GbpParams:
    """Stage `gbp`: guided-backprop maps G_I of every prepared image (Sec. 4.3)."""
    percentile: float = param(99.0, lo=1.0, hi=100.0, doc="each map is divided by this percentile, then clipped")
    batch_size: int = param(64, lo=1)
    figure_images: int = param(4, lo=1, hi=16, doc="test images shown in figures/semantics.png")


@dataclass(frozen=True)
class AgentParams:
    """Stages `train_agent@<name>`: model-based DDPG painting agent (Sec. 3-6), see docs/agent.md.

    Defaults are the CPU profile; profiles/paper.yaml holds the paper's (128 px, ResNet-18, batch 96, 2M steps).
    """
    episode_steps: int = param(40, lo=1, doc="bundles per episode, T (the paper: 40 bundles = 200 strokes)")
    bundle: int = param(5, lo=1, doc="strokes per step, K")
    foreground_strokes: int = param(3, lo=0, doc="of the K, foreground strokes of the semantic agent (paper 3:2)")
    train_steps: int = param(2500, lo=1, doc="environment steps, each for `envs` parallel episodes (paper: 2M)")
    envs: int = param(8, lo=1, doc="parallel episodes (published: 96)")
    updates_per_step: float = param(1.5, lo=0.0, doc="gradient updates per environment step (published: 0.25)")
    warmup_steps: int = param(20, lo=0, doc="environment steps with the untrained actor before any update")
    batch_size: int = param(16, lo=1, doc="transitions per update (paper: 96)")
    replay_size: int = param(8000, lo=1, doc="transitions kept (published: 800 episodes)")
    actor_width: int = param(24, lo=1, doc="channels of the first ResNet stage (ResNet-18: 64)")
    actor_blocks: list = param([1, 2], lo=0, hi=8, doc="residual blocks per stage; the feature map the strokes "
                               "are read from has stride 2 ** len(actor_blocks)")
    actor_hidden: int = param(128, lo=1, doc="width of the per-cell stroke head (networks.Actor)")
    grids: list = param([2, 4, 8, 16], lo=1, doc="grid side of each painting phase, coarse to fine (placement.py)")
    grid_steps: list = param([2, 6, 16], lo=0, doc="step t at which each next grid starts (len(grids) - 1 steps)")
    rank_by: str = param("mean_residual", choices=["mean_residual", "residual_energy"],
                         doc="which cells get the bundle's strokes (placement.top_cells)")
    stroke_reach: float = param(1.0, lo=0.0, doc="stroke ends lie within this many cells of the cell's centre")
    stroke_thickness: float = param(2.5, lo=0.0, doc="largest stroke diameter, in cells")
    cell_view: int = param(4, lo=0, doc="each stroke's head also sees its own cell: canvas, target (and S_I) "
                           "sampled cell_view x cell_view over the area the stroke reaches; 0 = off")
    reward_scale: str = param("image", choices=["image", "crop"], doc="l2: each term of Eq. 19 a mean over "
                              "the image's pixels (image) or over its own crop / GBP mass as printed (crop), "
                              "rewards.Rewards")
    cell_weighting: float = param(0.5, lo=0.0, doc="weight each sample of the actor loss by its cells' area "
                                  "** -cell_weighting (ddpg.cell_weights), so fine strokes learn too; 0 = off")
    critic_width: int = param(16, lo=1)
    critic_blocks: list = param([0, 1, 1, 1], lo=0, hi=8)
    distance: str = param("l2", choices=["l2", "wgan"], doc="L in every reward: WGAN-GP discriminator or MSE")
    training_canvas: str = param("rasteriser", choices=["rasteriser", "renderer"],
                                 doc="what paints the canvases in training: the real rasteriser, with the neural "
                                     "renderer's gradient (straight-through, env.training_density), or the "
                                     "neural renderer alone (as published)")
    compositing: str = param("layered", choices=["paper", "layered"],
                             doc="how the semantic agent's strokes composite with their layer "
                                 "(strokes.composite): Eq. 3-4 as printed (paper: a stroke erases under its whole "
                                 "density, colours only inside its layer) or layered (its density limited to its "
                                 "layer; docs/agent.md)")
    disc_width: int = param(16, lo=1, doc="channels of the discriminator's first conv (published: 16)")
    gp_lambda: float = param(10.0, lo=0.0, doc="WGAN gradient-penalty weight")
    gamma: float = param(0.0, lo=0.0, hi=1.0, doc="discount per step (published: 0.95 ** 5 = 0.774); 0 = myopic, no critic")
    tau: float = param(0.01, lo=0.0, hi=1.0, doc="soft-update rate of target networks (published: 0.001)")
    actor_lr: float = param(1e-3, lo=0.0)
    critic_lr: float = param(3e-4, lo=0.0)
    disc_lr: float = param(3e-4, lo=0.0)
    lr_decay_at: list = param([0.5, 0.8], lo=0.0, hi=1.0, doc="fractions of training where the lrs drop")
    lr_decay: float = param(0.3, lo=0.0, hi=1.0, doc="factor of each drop (published: 1e-3 -> 3e-4 -> 1e-4)")
    noise: float = param(0.0, lo=0.0, doc="std of Gaussian exploration noise on actions (published: 0)")
    mix_ratio: float = param(0.2, lo=0.0, hi=1.0, doc="share of episodes drawn from the dataset that "
                             "train_agent.py --mix-prepared names (Sec. 5; datasets/dvc.yaml)")
    checkpoint_every: int = param(200, lo=1, doc="updates between checkpoints")
    log_every: int = param(50, lo=1, doc="updates between logged training metrics")
    val_images: int = param(8, lo=1, doc="test images painted for validation metrics and the grid")
    threads: int = param(0, lo=0, doc="torch CPU threads; 0 = all cores, 1 resists other processes on the cores")
    processes: int = param(1, lo=1, doc="training processes on this machine (DDP, semguide_core/distributed.py), "
                           "each with its own `envs` episodes and replay; the global batch is batch_size x processes")
    seed: int = param(0, lo=0)

    def __post_init__(self):
        steps = list(self.grid_steps)
        if len(steps) != len(self.grids) - 1 or steps != sorted(steps):
            raise ConfigError(f"agent.grid_steps = {steps}: must be {len(self.grids) - 1} increasing steps, "
                              f"one for each grid after the first of agent.grids = {list(self.grids)}")


@dataclass(frozen=True)
class PaintParams:
    """Stage `paint` and `semguide paint`: inference with the trained agents (Sec. 5, Eq. 16)."""
    strokes: int = param(200, lo=1, doc="strokes per test image (the paper compares at 200)")
    frame_counts: list = param([10, 20, 30, 40, 50, 100, 200], lo=1, doc="strokes after which the canvas is "
                               "kept for the sequence figure (Fig. 6) and the painting-order measure")
    max_images: int = param(0, lo=0, doc="test images painted by each agent, 0 = all")
    batch_size: int = param(16, lo=1, doc="images painted together")
    min_instance_area: float = param(0.002, lo=0.0, hi=1.0, doc="smallest foreground instance (share of the "
                                     "image); smaller components of Psi's mask are background")
    max_instances: int = param(8, lo=1, doc="foreground instances Eq. 16 chooses among, largest first")
    scenes: int = param(4, lo=1, doc="sample-scenes test images (data/) painted by both agents for the "
                        "multi-instance figure (Fig. 4), segmented by the segmenter")


@dataclass(frozen=True)
class EvaluateParams:
    """Stage `evaluate`: the paper's Tables 1-2, whole-image scores, painting order and figures."""
    l2_side: int = param(128, lo=16, hi=1024, doc="side at which foreground L2 is computed (the paper: 128)")
    sequence_strokes: int = param(40, lo=1, doc="painting sequence (Sec. 7.2): progress read after this many "
                                  "strokes (20% of 200); one of paint.frame_counts")
    matched_share: float = param(0.25, lo=0.0, hi=1.0, doc="painting sequence: the share of test images read, "
                                 "those whose final L2 is most alike for both agents (the paper: equally similar)")
    coarse_sigma: float = param(0.03, lo=0.0, hi=0.5, doc="painting sequence: Gaussian sigma of the coarse "
                                "structure, a share of the canvas side (0.03: 2 px at 64 px)")
    figure_images: int = param(4, lo=1, hi=16, doc="rows of the comparison and sequence figures")


@dataclass(frozen=True)
class Params:
    """The whole params.yaml."""
    eta: float = param(2.0, lo=0.0, doc="foreground reward weight (Eq. 19)")
    nu: float = param(10.0, lo=0.0, doc="focus reward weight (Eq. 19)")
    canvas: int = param(64, lo=16, hi=1024, doc="canvas side in pixels (the paper: 128)")
    device: str = param("auto", choices=["auto", "cpu", "cuda"])
    dataset: str = param("sample-birds", choices=["sample-birds", "sample-cars", "sample-scenes", "cub", "cars",
                                                  "vkitti"],
                         doc="which dataset `prepare` reads: a folder under prepare.data_dir, see docs/data.md")
    strokes: StrokesParams = field(default_factory=StrokesParams)
    renderer: RendererParams = field(default_factory=RendererParams)
    prepare: PrepareParams = field(default_factory=PrepareParams)
    segmenter: SegmenterParams = field(default_factory=SegmenterParams)
    extract_masks: ExtractMasksParams = field(default_factory=ExtractMasksParams)
    psi: PsiParams = field(default_factory=PsiParams)
    expert: ExpertParams = field(default_factory=ExpertParams)
    gbp: GbpParams = field(default_factory=GbpParams)
    agent: AgentParams = field(default_factory=AgentParams)
    paint: PaintParams = field(default_factory=PaintParams)
    evaluate: EvaluateParams = field(default_factory=EvaluateParams)


# ----------------------------------------------------------------------------------------------- loader
def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and check params.yaml; raise ConfigError naming the first bad key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: {'is a directory, not a params file' if path.is_dir() else 'file not found'}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not a UTF-8 text file (byte {err.start})") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML ({where}{problem})") from None
    params = build(Params, raw, where=str(path))
    check_consistent(params, str(path))
    return params


def check_consistent(p: Params, where: str) -> None:
    """Constraints between keys, checked before any stage writes: ConfigError naming the keys."""
    side = 2 ** p.renderer.upsample_blocks
    if p.canvas % side:
        raise ConfigError(f"{where}: canvas = {p.canvas} must be divisible by 2 ** renderer.upsample_blocks = {side}")
    if p.device == "cuda":
        import torch  # only here: checking a params file should not need torch otherwise

        if not torch.cuda.is_available():
            raise ConfigError(f"{where}: device = cuda but CUDA is not available on this machine (use auto or cpu)")


def build(cls, raw, where: str, prefix: str = ""):
    """Turn a mapping into the dataclass `cls`, checking keys, types and ranges."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: {prefix.rstrip('.') or 'top level'} must be a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in known:
            raise ConfigError(f"{where}: unknown key {prefix}{key} (known: {', '.join(known)})")
    values = {}
    for name, f in known.items():
        if name not in raw:
            continue
        key, value, kind = prefix + name, raw[name], hints[name]
        if dataclasses.is_dataclass(kind):
            values[name] = build(kind, value, where, key + ".")
        else:
            values[name] = _checked(key, value, kind, f.metadata, where)
    return cls(**values)


def _number(text: str):
    """1e-4 as people type it: YAML 1.1 (PyYAML) reads an exponent without a dot as a string."""
    try:
        return float(text)
    except ValueError:
        return text


def _checked(key, value, kind, meta, where):
    bad = f"{where}: {key} = {value!r}"
    origin = typing.get_origin(kind) or kind
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{bad}: must be a list")
        if meta.get("lo") is not None or meta.get("hi") is not None:  # a list of numbers
            value = [_number(item) if isinstance(item, str) else item for item in value]
    elif kind is float:
        value = _number(value) if isinstance(value, str) else value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{bad}: must be a number")
        value = float(value)
    elif kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{bad}: must be an integer")
    elif kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{bad}: must be true or false")
    elif kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"{bad}: must be a string")
    choices, lo, hi = meta.get("choices"), meta.get("lo"), meta.get("hi")
    for item in value if origin is list else [value]:  # a list's range applies to each item
        if isinstance(item, float) and not math.isfinite(item):
            raise ConfigError(f"{bad}: must be a finite number")
        if choices is not None and item not in choices:
            raise ConfigError(f"{bad}: must be one of {', '.join(map(str, choices))}")
        if not isinstance(item, (int, float)) and (lo is not None or hi is not None):
            raise ConfigError(f"{bad}: must hold numbers")
        if lo is not None and item < lo:
            raise ConfigError(f"{bad}: must be >= {lo}")
        if hi is not None and item > hi:
            raise ConfigError(f"{bad}: must be <= {hi}")
    return value
