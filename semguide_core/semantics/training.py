"""One supervised training loop for the three semantic models (segmenter, Psi, expert).

Adam with a cosine learning-rate decay, a tqdm progress bar, DVCLive logging, and a checkpoint
(`runtime.Checkpoint`) every `checkpoint_every` steps and at the end. A killed run resumes from its
checkpoint when rerun with the same settings; the stage clears the checkpoint once its outputs are
written. Batches are drawn from a generator seeded by (seed, step), so a resumed run sees the batches an
uninterrupted run would have seen.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from tqdm import tqdm

from semguide_core.errors import TrainingDiverged
from semguide_core.runtime import Checkpoint


@dataclass(frozen=True)
class Schedule:
    steps: int
    lr: float
    checkpoint_every: int
    seed: int
    log_every: int = 10


def fit(model: torch.nn.Module, loss_fn: Callable, sample_batch: Callable, schedule: Schedule,
        checkpoint: Checkpoint, live_dir: str | Path, desc: str) -> torch.nn.Module:
    """Train `model` in place and return it.

    sample_batch(generator) -> batch, drawn with the step's own generator;
    loss_fn(model, batch) -> (loss tensor, {name: float} logged to DVCLive).
    """
    from dvclive import Live  # imported here: `semguide paint` loads these models, 0.4 s sooner without it

    optimizer = torch.optim.Adam(model.parameters(), lr=schedule.lr)
    start = 0
    state = checkpoint.load()
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start = int(state["step"])
        print(f"resuming {checkpoint.path} at step {start}")
    live = Live(str(live_dir), dvcyaml=False, save_dvc_exp=False, resume=start > 0)
    model.train()
    for step in tqdm(range(start, schedule.steps), desc=desc, initial=start, total=schedule.steps):
        for group in optimizer.param_groups:  # cosine decay from lr to 0
            group["lr"] = schedule.lr * 0.5 * (1 + math.cos(math.pi * step / schedule.steps))
        generator = torch.Generator().manual_seed(schedule.seed * 1_000_003 + step)
        loss, logs = loss_fn(model, sample_batch(generator))
        if not torch.isfinite(loss):
            raise TrainingDiverged(f"{desc}: loss is {loss.item()} at step {step}; {checkpoint.kept()}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if (step + 1) % schedule.log_every == 0 or step + 1 == schedule.steps:
            live.step = step + 1  # DVCLive's x axis is the training step, also after a resume
            for name, value in logs.items():
                live.log_metric(name, value)
            live.next_step()
        if (step + 1) % schedule.checkpoint_every == 0 or step + 1 == schedule.steps:
            checkpoint.save({"step": step + 1, "model": model.state_dict(),
                             "optimizer": optimizer.state_dict()})
    live.end()
    return model.eval()



def random_flips(generator: torch.Generator, n: int) -> torch.Tensor:
    """Which of n samples to mirror left-right: bool [n], each with probability 1/2."""
    return torch.rand(n, generator=generator) < 0.5


def hflip(x: torch.Tensor, flags: torch.Tensor) -> torch.Tensor:
    """Mirror the images / masks [N, C, H, W] where flags [N] is true."""
    return torch.where(flags[:, None, None, None], x.flip(-1), x)


def hflip_boxes(boxes: torch.Tensor, flags: torch.Tensor) -> torch.Tensor:
    """The boxes [N, 4] of mirrored images: x becomes 1 - x - w."""
    mirrored = torch.stack([1 - boxes[:, 0] - boxes[:, 2], boxes[:, 1], boxes[:, 2], boxes[:, 3]], 1)
    return torch.where(flags[:, None], mirrored, boxes)


def random_zoom(generator: torch.Generator, n: int, zoom: float, shift: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample zoom factors [n] uniform in [1 - zoom, 1 + zoom] and shifts [n, 2] (x, y) uniform in
    [-shift, shift] (fractions of the image side), for `zoom_images` / `zoom_boxes`."""
    scale = 1 + zoom * (2 * torch.rand(n, generator=generator) - 1)
    offset = shift * (2 * torch.rand(n, 2, generator=generator) - 1)
    return scale, offset


def zoom_images(x: torch.Tensor, scale: torch.Tensor, offset: torch.Tensor, padding: str = "border") -> torch.Tensor:
    """Images or masks [N, C, H, W] with their content moved: the point u (fractions of the side) goes to
    0.5 + scale * (u - 0.5) + offset; bilinear, the edge repeated (`border`) or zero (`zeros`) outside."""
    zero = torch.zeros_like(scale)
    # affine_grid maps output coordinates (in [-1, 1]) to input ones: the inverse of the move above
    theta = torch.stack([torch.stack([1 / scale, zero, -2 * offset[:, 0] / scale], 1),
                         torch.stack([zero, 1 / scale, -2 * offset[:, 1] / scale], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding, align_corners=False)


def zoom_boxes(boxes: torch.Tensor, scale: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """The boxes [N, 4] (x, y, w, h) of `zoom_images`' output, clipped to the image."""
    low = 0.5 + scale[:, None] * (boxes[:, :2] - 0.5) + offset
    high = low + scale[:, None] * boxes[:, 2:]
    low, high = low.clamp(0, 1), high.clamp(0, 1)
    return torch.cat([low, high - low], 1)


def jitter_colours(generator: torch.Generator, images: torch.Tensor, strength: float) -> torch.Tensor:
    """Images [N, 3, H, W] in [0, 1] with each channel scaled by a factor uniform in [1 - strength,
    1 + strength] and a brightness shift uniform in +-strength / 3, clipped to [0, 1]."""
    n = len(images)
    gain = 1 + strength * (2 * torch.rand(n, 3, 1, 1, generator=generator) - 1)
    shift = strength / 3 * (2 * torch.rand(n, 1, 1, 1, generator=generator) - 1)
    return (images * gain + shift).clamp(0, 1)


@torch.no_grad()
def recalibrate_batchnorm(model: torch.nn.Module, inputs: torch.Tensor, batch_size: int) -> None:
    """Recompute every BatchNorm's running mean / variance as the plain average over `inputs`.

    torchvision's MobileNetV3 keeps its running statistics with momentum 0.01, which after a few hundred
    steps are still far from the trained weights' statistics: in eval mode the segmenter then predicted
    background everywhere (held-out IoU 0.0; 0.28 after recalibration, measured on sample-birds).
    """
    device = next(model.parameters()).device
    torch.optim.swa_utils.update_bn([inputs[i:i + batch_size].to(device) for i in range(0, len(inputs), batch_size)],
                                    model)
    model.eval()
